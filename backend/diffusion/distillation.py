"""Progressive distillation (Salimans & Ho 2022) in EDM's sigma parameterisation.

One student Euler (= DDIM) step from sigma_t to sigma_s is trained to land where two teacher
Euler steps t -> mid -> s land. Repeat `rounds` times to go from `teacher_steps` to
teacher_steps / 2**rounds steps; sample the student with the returned sigmas and `sample_euler`.
"""

from __future__ import annotations

import copy
import itertools
from typing import Iterable

import torch
from torch import Tensor

from backend.diffusion.preconditioning import Conditioning, Denoiser
from backend.diffusion.schedules import karras_sigmas


def _euler(denoiser: Denoiser, x: Tensor, t: Tensor, s: Tensor, cond: Conditioning | None) -> Tensor:
    t_ = t.reshape(-1, *[1] * (x.ndim - 1))
    s_ = s.reshape(-1, *[1] * (x.ndim - 1))
    return x + (s_ - t_) * (x - denoiser(x, t, cond)) / t_


def progressive_distillation(
    teacher: Denoiser,
    data: Iterable[Tensor | tuple[Tensor, Conditioning]],  # batches of x0 [B, C, *S] (optionally with cond)
    *,
    teacher_steps: int = 16,
    rounds: int = 1,
    iters_per_round: int = 1000,
    lr: float = 1e-4,
    sigma_min: float = 0.002,
    sigma_max: float = 80.0,
    rho: float = 7.0,
    generator: torch.Generator | None = None,
    losses: list[float] | None = None,
) -> tuple[Denoiser, Tensor]:
    """Returns (student, student_sigmas) with len(student_sigmas) - 1 == teacher_steps // 2**rounds.

    `losses`, if given, receives each iteration's mean loss (for logging and tests).
    """
    if teacher_steps % (2**rounds):
        raise ValueError(f"teacher_steps={teacher_steps} must be divisible by 2**rounds={2**rounds}")
    if generator is None:
        raise ValueError("progressive_distillation needs a seeded torch.Generator")
    device = next(teacher.parameters()).device
    sigmas = karras_sigmas(teacher_steps, sigma_min, sigma_max, rho, device=device)
    batches = itertools.cycle(data)
    teacher = copy.deepcopy(teacher).eval().requires_grad_(False)
    for _ in range(rounds):
        student = copy.deepcopy(teacher).train().requires_grad_(True)
        opt = torch.optim.AdamW(student.parameters(), lr=lr, weight_decay=0.0)
        n_student = (len(sigmas) - 1) // 2
        for _ in range(iters_per_round):
            batch = next(batches)
            x0, cond = batch if isinstance(batch, tuple) else (batch, None)
            x0 = x0.to(device, torch.float32)
            B = x0.shape[0]
            i = torch.randint(n_student, (B,), generator=generator, device=device)  # student step index
            t, mid, s = sigmas[2 * i], sigmas[2 * i + 1], sigmas[2 * i + 2]  # [B] each
            noise = torch.randn(x0.shape, generator=generator, device=device)
            x_t = x0 + t.reshape(-1, *[1] * (x0.ndim - 1)) * noise
            with torch.no_grad():
                x_s = _euler(teacher, _euler(teacher, x_t, t, mid, cond), mid, s, cond)
                # Solve the student's Euler step x_s = (s/t) x_t + (1 - s/t) D for D.
                ratio = (s / t).reshape(-1, *[1] * (x0.ndim - 1))
                target = (x_s - ratio * x_t) / (1 - ratio)
            sd = teacher.sigma_data
            t_ = t.reshape(-1, *[1] * (x0.ndim - 1))
            weight = (t_**2 + sd**2) / (t_ * sd) ** 2
            loss = (weight * (student(x_t, t, cond) - target) ** 2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if losses is not None:
                losses.append(float(loss.detach()))
        teacher = student.eval().requires_grad_(False)
        sigmas = sigmas[::2]  # every other teacher sigma; still ends in 0 because teacher_steps is even
    return teacher, sigmas
