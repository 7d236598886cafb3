"""Network evaluations per second and time per sample for the diffusion core.

    python -m benchmarks.bench_diffusion [--device cpu|cuda] [--budget 3] [--threads N] [--out FILE]   (from the repo root)

Each case runs one warm-up evaluation, then repeats for about `--budget` seconds (at least one
timed call), so the whole run stays bounded. Timings are wall-clock under torch.inference_mode.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import time
from typing import Callable

import torch

from backend.diffusion import Denoiser, get_sampler, karras_sigmas
from backend.networks import build_unet, count_params


def hardware_line(device: torch.device) -> str:
    try:
        model = next(line.split(":", 1)[1].strip() for line in subprocess.run(
            ["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines()
            if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        model = platform.processor() or "unknown CPU"
    gpu = f", GPU {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"# {model}, {os.cpu_count()} cores ({torch.get_num_threads()} torch threads){gpu}, "
            f"torch {torch.__version__}, {datetime.date.today().isoformat()}, load avg {load:.1f} (shared machine)")


def timed(fn: Callable[[], object], device: torch.device, budget: float) -> float:
    """Seconds per call of fn, after one warm-up call."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    fn()
    sync()
    n, start = 0, time.perf_counter()
    while n == 0 or (time.perf_counter() - start < budget and n < 50):
        fn()
        n += 1
    sync()
    return (time.perf_counter() - start) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--budget", type=float, default=3.0, help="seconds of timed calls per case")
    ap.add_argument("--out", default=None, help="also write the report to this file")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default); "
                    "1 is steadier on a shared machine")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    lines: list[str] = []

    def emit(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    emit(hardware_line(device))
    emit(f"{'preset':6} {'dims':>4} {'size':>8} {'batch':>5} {'params':>8} {'s/eval':>9} {'evals/s':>9} {'samples/s':>9}")
    cases = [(p, 2, s) for p in ("small", "base") for s in (64, 128, 256)] + [(p, 3, 32) for p in ("small", "base")]
    with torch.inference_mode():
        for preset, dims, size in cases:
            torch.manual_seed(0)
            den = Denoiser(build_unet(preset, dims=dims)).to(device).eval()
            for batch in (1, 8):
                x = torch.randn(batch, 1, *[size] * dims, device=device)
                sigma = torch.full((batch,), 1.0, device=device)
                sec = timed(lambda: den(x, sigma), device, args.budget)
                emit(f"{preset:6} {dims:>4} {'x'.join([str(size)] * dims):>8} {batch:>5} "
                     f"{count_params(den) / 1e6:>7.1f}M {sec:>9.4f} {1 / sec:>9.2f} {batch / sec:>9.2f}")

        emit("")
        emit("time per sample, 2D small preset, 64x64, batch 1 (heun uses 2n-1 evaluations)")
        emit(f"{'sampler':9} {'steps':>5} {'s/sample':>9}")
        torch.manual_seed(0)
        den = Denoiser(build_unet("small", dims=2)).to(device).eval()
        for name in ("euler", "heun", "dpmpp_2m"):
            for steps in (4, 8, 16):
                sigmas = karras_sigmas(steps, device=device)
                x = torch.randn(1, 1, 64, 64, device=device) * sigmas[0]
                sampler = get_sampler(name)
                sec = timed(lambda: sampler(den, x, sigmas), device, args.budget)
                emit(f"{name:9} {steps:>5} {sec:>9.3f}")

    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
