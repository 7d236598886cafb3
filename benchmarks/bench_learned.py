"""Time learned terrain (base + super-resolution + erosion stage) at 256², 512² and 1024², native 30 m cells.

    python -m benchmarks.bench_learned [--repeats 3] [--large-repeats 3] [--sizes 256,512,1024]

Runs the shipped models through the same DiffusionGenerator the server uses (after its warm-up),
on the CPU and on CUDA when present; prints the median seconds per terrain, each row's ratio to the
256² interactive row of the same run, and writes them to benchmarks/results/learned_<device>.txt.
Rows: interactive and full with the default (light) erosion stage, and interactive with erosion off and
mature, so the stage's cost shows. Targets on a CPU like the development machine's: 256² interactive in
<= 0.5 s, 512² in <= 2 s, 1024² in <= 16x the 256² time (cost in proportion to area); 1024² in <= 0.5 s
on an H100.
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
from backend.simulation.landscape import EROSION_STAGES
from benchmarks.hardware import header

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_S = {("cpu", 256, "interactive"): 0.5, ("cpu", 512, "interactive"): 2.0, ("cuda", 1024, "interactive"): 0.5}
TARGET_RATIO = {("cpu", 1024, "interactive"): 16.0}  # against 256² interactive, same run
ROWS = (("interactive", "light"), ("interactive", "off"), ("interactive", "mature"), ("full", "light"))


def time_one(generator: DiffusionGenerator, resolution: int, quality: str, erosion: str, seed: int,
             device: str) -> float:
    request = GenerateRequest(style_weights={"alpine": 1.0}, resolution=resolution, seed=seed,
                              size_m=generator.native_size_m(resolution), generator="diffusion", quality=quality,
                              erosion_stage=erosion)
    t0 = time.perf_counter()
    generator.generate(request, lambda step, total, preview: None)
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def verdict(device: str, resolution: int, quality: str, erosion: str, median: float, ratio: float) -> str:
    """The row's target, met or not (targets apply to the default erosion stage)."""
    if erosion != "light":
        return ""
    if (target := TARGET_S.get((device, resolution, quality))) is not None:
        return f"  target <= {target} s: {'met' if median <= target else 'not met'}"
    if (target := TARGET_RATIO.get((device, resolution, quality))) is not None:
        return f"  target <= {target:g}x: {'met' if ratio <= target else 'not met'}"
    return ""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per row below 1024²")
    ap.add_argument("--large-repeats", type=int, default=3,
                    help="timed runs per row from 1024² on (the first at a size also builds fastscapelib's grid)")
    ap.add_argument("--sizes", default="256,512,1024")
    ap.add_argument("--devices", default="cpu,cuda", help="devices to time where present (on a GPU machine pass cuda: "
                    "its CPU rows would overwrite learned_cpu.txt)")
    args = ap.parse_args()
    wanted = args.devices.split(",")
    for device in [d for d in ("cpu", "cuda") if d in wanted and (d == "cpu" or torch.cuda.is_available())]:
        lines = [header("learned terrain"), f"# load average at start {os.getloadavg()[0]:.1f}"] + \
            [f"# {name}: {settings}" for name, settings in QUALITY.items()] + \
            [f"# erosion {name}: {stage}" for name, stage in EROSION_STAGES.items()]
        print("\n".join(lines), flush=True)
        generator = DiffusionGenerator(device)
        time_one(generator, 256, "interactive", "light", 0, device)  # warm-up, as the server does once
        baseline = None
        for resolution in (int(s) for s in args.sizes.split(",")):
            repeats = args.repeats if resolution < 1024 else args.large_repeats
            for quality, erosion in ROWS:
                runs = [time_one(generator, resolution, quality, erosion, seed, device) for seed in range(repeats)]
                median = statistics.median(runs)
                baseline = median if baseline is None else baseline  # 256² interactive, light: the first row
                ratio = median / baseline
                lines.append(f"{device:4s} {resolution:5d}^2 {quality:11s} erosion {erosion:6s}: median {median:7.3f} s "
                             f"(min {min(runs):.3f}, {repeats} runs, {ratio:5.1f}x)"
                             + verdict(device, resolution, quality, erosion, median, ratio))
                print(lines[-1], flush=True)
        (RESULTS / f"learned_{device}.txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
