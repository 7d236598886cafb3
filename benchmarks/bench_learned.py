"""Time learned terrain (base + super-resolution) at 256² and 1024², interactive and full settings.

    python -m benchmarks.bench_learned [--repeats 3]

Runs the shipped models through the same DiffusionGenerator the server uses (after its warm-up),
on the CPU and on CUDA when present; prints the median seconds per terrain. Targets: 256² at the
interactive setting in <= 0.5 s on a CPU like the development machine's; 1024² in <= 0.5 s on an H100.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from backend.generators import DiffusionGenerator, GenerateRequest
from backend.generators.learned import QUALITY
from benchmarks.hardware import header


def time_one(generator: DiffusionGenerator, resolution: int, quality: str, seed: int, device: str) -> float:
    request = GenerateRequest(style_weights={"alpine": 1.0}, resolution=resolution, seed=seed,
                              generator="diffusion", quality=quality)
    t0 = time.perf_counter()
    generator.generate(request, lambda step, total, preview: None)
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print(header("learned terrain"))
    for name, settings in QUALITY.items():
        print(f"# {name}: {settings}")
    for device in ["cpu"] + (["cuda"] if torch.cuda.is_available() else []):
        generator = DiffusionGenerator(device)
        for resolution in (256, 1024):
            for quality in QUALITY:
                runs = [time_one(generator, resolution, quality, seed, device) for seed in range(args.repeats)]
                print(f"{device:4s} {resolution:5d}^2 {quality:11s}: median {statistics.median(runs):7.3f} s "
                      f"(min {min(runs):.3f}, {args.repeats} runs)", flush=True)


if __name__ == "__main__":
    main()
