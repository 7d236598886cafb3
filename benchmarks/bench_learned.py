"""Time learned terrain (base + super-resolution) at 256² and 1024², interactive and full settings.

    python -m benchmarks.bench_learned [--repeats 3] [--large-repeats 1] [--sizes 256,1024]

Runs the shipped models through the same DiffusionGenerator the server uses (after its warm-up),
on the CPU and on CUDA when present; prints the median seconds per terrain and writes them to
benchmarks/results/learned_<device>.txt. Targets: 256² at the interactive setting in <= 0.5 s on a CPU
like the development machine's; 1024² in <= 0.5 s on an H100.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch

from backend.generators import DiffusionGenerator, GenerateRequest
from backend.models.terrain import QUALITY
from benchmarks.hardware import header

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_S = {("cpu", 256, "interactive"): 0.5, ("cuda", 1024, "interactive"): 0.5}


def time_one(generator: DiffusionGenerator, resolution: int, quality: str, seed: int, device: str) -> float:
    request = GenerateRequest(style_weights={"alpine": 1.0}, resolution=resolution, seed=seed,
                              size_m=generator.native_size_m(resolution), generator="diffusion", quality=quality)
    t0 = time.perf_counter()
    generator.generate(request, lambda step, total, preview: None)
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per row below 1024²")
    ap.add_argument("--large-repeats", type=int, default=1, help="timed runs per row from 1024² on")
    ap.add_argument("--sizes", default="256,1024")
    args = ap.parse_args()
    for device in ["cpu"] + (["cuda"] if torch.cuda.is_available() else []):
        lines = [header("learned terrain"), f"# load average at start {os.getloadavg()[0]:.1f}"] + \
            [f"# {name}: {settings}" for name, settings in QUALITY.items()]
        print("\n".join(lines), flush=True)
        generator = DiffusionGenerator(device)
        time_one(generator, 256, "interactive", 0, device)  # warm-up, as the server does once
        for resolution in (int(s) for s in args.sizes.split(",")):
            repeats = args.repeats if resolution < 1024 else args.large_repeats
            for quality in QUALITY:
                runs = [time_one(generator, resolution, quality, seed, device) for seed in range(repeats)]
                target = TARGET_S.get((device, resolution, quality))
                verdict = "" if target is None else \
                    f"  target <= {target} s: {'met' if statistics.median(runs) <= target else 'not met'}"
                lines.append(f"{device:4s} {resolution:5d}^2 {quality:11s}: median {statistics.median(runs):7.3f} s "
                             f"(min {min(runs):.3f}, {repeats} runs){verdict}")
                print(lines[-1], flush=True)
        (RESULTS / f"learned_{device}.txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
