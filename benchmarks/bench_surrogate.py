"""Time one learned K-step erosion call against K physics steps at 1024² and 2048² (the surrogate on the CPU or, --device cuda, a GPU).

    python benchmarks/bench_surrogate.py [--model models/erosion_surrogate.safetensors] [--sizes 1024,2048]
        | tee benchmarks/results/surrogate_cpu.txt

The terrain is a held-out corpus map (or, without a corpus, a generated one) resampled bicubically to the size,
30 m cells. For every K on the surrogate's ladder: seconds of ``landscape.erode`` with K steps (the physics,
sinks resolved in the first step as in the erosion stage), seconds of one surrogate call (routing, the implicit
step and the network), their ratio, and whether the horizon ships (at least 3x faster). The headline: the
mature stage (10 steps) at 1024² by each engine, ratios measured in this run.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy.ndimage import zoom  # noqa: E402

from backend.models.erosion_surrogate import ErosionSurrogate  # noqa: E402
from backend.simulation.landscape import erode  # noqa: E402
from backend.simulation.learned_steps import MATURE_STEP  # noqa: E402
from backend.simulation.surrogate_stage import run_stage  # noqa: E402
from benchmarks.hardware import header  # noqa: E402

SHIP_RATIO = 3.0
CELL = 30.0


def terrain(size: int, corpus: list[str]) -> np.ndarray:
    from backend.data.datasets import load_maps
    heights = load_maps(corpus, "heldout").heights[0].astype(np.float64)
    return zoom(heights, size / heights.shape[0], order=3)


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "models" / "erosion_surrogate.safetensors"))
    ap.add_argument("--corpus", nargs="+", default=[str(ROOT / "corpus" / "v2a")])
    ap.add_argument("--sizes", default="1024,2048")
    ap.add_argument("--device", default="cpu", help="where the surrogate runs (the physics runs on the CPU)")
    args = ap.parse_args()
    print(header("erosion surrogate"))
    surrogate = ErosionSurrogate.load(args.model, args.device)
    dev = args.device
    print(f"# model {Path(args.model).name} sha256 {surrogate.sha256[:16]}, "
          f"{sum(p.numel() for p in surrogate.net.parameters())} parameters, learned horizons "
          f"{surrogate.config.horizons}, shipped {surrogate.horizons}")
    for size in (int(s) for s in args.sizes.split(",")):
        z = terrain(size, args.corpus)
        erode(z, CELL, MATURE_STEP)  # warm-up at this size: the first fastscapelib run allocates (seconds)
        surrogate.delta({"heights": z}, CELL, MATURE_STEP, min(surrogate.config.horizons))  # and torch's lazy initialisation
        shipped = []
        for k in surrogate.config.horizons:  # every learned horizon: the benchmark decides which ship
            physics = timed(erode, z, CELL, replace(MATURE_STEP, steps=k))
            learned = timed(surrogate.delta, {"heights": z}, CELL, MATURE_STEP, k)  # returns numpy: synchronised
            ratio = physics / learned
            shipped += [k] if ratio >= SHIP_RATIO else []
            print(f"{dev} {size:5d}^2 K={k:2d}: physics {physics:7.2f} s  surrogate {learned:6.2f} s  "
                  f"x{ratio:5.1f}  {'ship' if ratio >= SHIP_RATIO else 'no'}", flush=True)
        print(f"{dev} {size:5d}^2 horizons at least {SHIP_RATIO:g}x faster than physics: {shipped}")
        mature = replace(MATURE_STEP, steps=10)
        for engine in ("physics", "surrogate", "gated"):
            seconds = timed(run_stage, z, CELL, mature, engine, surrogate)
            print(f"{dev} {size:5d}^2 mature stage (10 steps) by {engine:9s}: {seconds:7.2f} s", flush=True)
    print(f"# torch threads {torch.get_num_threads()}")


if __name__ == "__main__":
    main()
