"""Noise schedules: pure functions returning a decreasing sigma sequence that ends in 0."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def _check(n: int, sigma_min: float, sigma_max: float) -> None:
    if n < 1:
        raise ValueError(f"number of steps must be >= 1, got {n}")
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max, got sigma_min={sigma_min}, sigma_max={sigma_max}")


def append_zero(sigmas: Tensor) -> Tensor:
    return torch.cat([sigmas, sigmas.new_zeros(1)])


def karras_sigmas(n: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0,
                  device: torch.device | str = "cpu") -> Tensor:
    """EDM eq. 5: n sigmas from sigma_max to sigma_min evenly spaced in sigma^(1/rho), then 0. -> [n + 1]"""
    _check(n, sigma_min, sigma_max)
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return append_zero((hi + ramp * (lo - hi)) ** rho).to(device=device, dtype=torch.float32)


def exponential_sigmas(n: int, sigma_min: float = 0.002, sigma_max: float = 80.0,
                       device: torch.device | str = "cpu") -> Tensor:
    """n sigmas evenly spaced in log(sigma), then 0 (even steps in DPM-Solver's time t = -log sigma)."""
    _check(n, sigma_min, sigma_max)
    s = torch.linspace(math.log(sigma_max), math.log(sigma_min), n, dtype=torch.float64).exp()
    return append_zero(s).to(device=device, dtype=torch.float32)
