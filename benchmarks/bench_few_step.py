"""What few steps cost: samplers at 2-8 evaluations and a progressively distilled student, against
the full sampler, on one small model trained in the same run.

Quality is measured two ways from the same starting noise: the RMS distance of each few-step sample
to the full sampler's sample (trajectory error, relative to the data's spread), and how far the
samples' peak-height distribution is from the data's (1D Wasserstein distance). A distilled model
for the shipped terrain models comes with those models; this run measures the method itself.

    python -m benchmarks.bench_few_step [--out benchmarks/results/few_step_cpu.txt]
"""

from __future__ import annotations

import argparse
import datetime
import platform
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import wasserstein_distance

from backend.diffusion import Denoiser, EDMLoss
from backend.diffusion.distillation import progressive_distillation
from backend.diffusion.samplers import sample_dpmpp_2m, sample_euler, sample_heun
from backend.diffusion.schedules import karras_sigmas
from backend.networks import build_unet
from backend.training.loop import Trainer, TrainConfig


def blobs(n: int, size: int = 16, seed: int = 0) -> torch.Tensor:
    """n Gaussian bumps of random centre, radius and height: [n, 1, size, size]."""
    g = torch.Generator().manual_seed(seed)
    grid = torch.arange(size, dtype=torch.float32)
    yy, xx = torch.meshgrid(grid, grid, indexing="ij")
    c = torch.rand(n, 2, 1, 1, generator=g) * (size - 6) + 3
    r = torch.rand(n, 1, 1, generator=g) * 2 + 1.5
    a = torch.rand(n, 1, 1, generator=g) + 0.5
    return (a * torch.exp(-((yy - c[:, 0]) ** 2 + (xx - c[:, 1]) ** 2) / (2 * r**2)))[:, None]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-steps", type=int, default=1500)
    parser.add_argument("--distill-iters", type=int, default=400)
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/few_step_cpu.txt"))
    args = parser.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)

    data = blobs(1024)
    t0 = time.perf_counter()
    trainer = Trainer(Denoiser(build_unet("tiny")), data, EDMLoss(),
                      TrainConfig(steps=args.train_steps, batch_size=32, lr=2e-3, ema_decay=0.995, progress=False))
    trainer.train()
    model = trainer.ema.eval()
    train_s = time.perf_counter() - t0

    noise = torch.randn(args.samples, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    peaks_data = data.amax(dim=(1, 2, 3)).numpy()
    spread = float(data.std())

    @torch.no_grad()
    def run(sampler, denoiser, sigmas) -> tuple[np.ndarray, float]:
        start = time.perf_counter()
        x = sampler(denoiser, noise * sigmas[0], sigmas)
        return x, time.perf_counter() - start

    reference, ref_s = run(sample_heun, model, karras_sigmas(32))
    rows = [("heun (reference)", 63, reference, ref_s)]
    for steps in (2, 4, 8):
        for name, sampler, evals in (("euler", sample_euler, steps), ("dpmpp_2m", sample_dpmpp_2m, steps),
                                     ("heun", sample_heun, 2 * steps - 1)):
            x, s = run(sampler, model, karras_sigmas(steps))
            rows.append((f"{name} {steps} steps", evals, x, s))
    t0 = time.perf_counter()
    batches = [data[i:i + 32] for i in range(0, len(data), 32)]
    for rounds in (2, 3):
        student, sigmas = progressive_distillation(model, batches, teacher_steps=16, rounds=rounds,
                                                   iters_per_round=args.distill_iters, lr=2e-4,
                                                   generator=torch.Generator().manual_seed(rounds))
        x, s = run(sample_euler, student.eval(), sigmas)
        rows.append((f"distilled 16->{len(sigmas) - 1}", len(sigmas) - 1, x, s))
    distill_s = time.perf_counter() - t0

    lines = [
        f"# few-step quality benchmark, {datetime.datetime.now().isoformat(timespec='seconds')}",
        f"# cpu: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
        f"# tiny U-Net ({sum(p.numel() for p in model.parameters())} params) trained {args.train_steps} steps "
        f"on 16x16 Gaussian bumps in {train_s:.0f} s; distillation (2 and 3 rounds x {args.distill_iters} iters) "
        f"{distill_s:.0f} s",
        f"# {args.samples} samples from the same noise; rms_to_ref = RMS distance to the 32-step Heun sample / data std;",
        "# peak_W1 = Wasserstein-1 distance between sample and data peak-height distributions (lower is better)",
        "",
        f"{'sampler':<22}{'evals':>6}{'rms_to_ref':>12}{'peak_W1':>10}{'ms/sample':>11}",
    ]
    for name, evals, x, seconds in rows:
        rms = float(((x - reference) ** 2).mean().sqrt()) / spread
        w1 = wasserstein_distance(x.amax(dim=(1, 2, 3)).numpy(), peaks_data)
        lines.append(f"{name:<22}{evals:>6}{rms:>12.3f}{w1:>10.3f}{1000 * seconds / args.samples:>11.2f}")
    text = "\n".join(lines)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
