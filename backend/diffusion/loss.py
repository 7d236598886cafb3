"""EDM training loss (Karras et al. 2022, sec. 5): log-normal sigmas, lambda(sigma) = 1 / c_out^2."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import Tensor

from backend.diffusion.preconditioning import Conditioning, Denoiser

_DROPPABLE = ("style_weights", "sliders", "spatial", "memory")


@dataclass
class EDMLoss:
    """Callable holding the loss settings; returns the per-sample loss [B] (the loop reduces it).

    cond_dropout maps a Conditioning field to the probability of replacing it, per sample, by its
    null (zeros), so the same network also learns the unconditional model classifier-free guidance needs.
    cell_weight, when set, maps the clean batch x0 to a weight per element (broadcastable to x0): rare features
    that a plain mean lets the network hedge on can be made to cost what they matter (the voxel model's caves).
    """

    P_mean: float = -1.2  # mean of log(sigma)
    P_std: float = 1.2  # std of log(sigma)
    cond_dropout: dict[str, float] = field(default_factory=lambda: {"style_weights": 0.1, "sliders": 0.1})
    cell_weight: Callable[[Tensor], Tensor] | None = None

    def __post_init__(self) -> None:
        for k, p in self.cond_dropout.items():
            if k not in _DROPPABLE:
                raise ValueError(f"cond_dropout key {k!r} is not one of {_DROPPABLE}")
            if not 0 <= p <= 1:
                raise ValueError(f"cond_dropout[{k!r}] = {p} is not a probability")

    def sample_sigma(self, n: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
        return (torch.randn(n, generator=generator, device=device) * self.P_std + self.P_mean).exp()  # [B]

    def drop(self, cond: Conditioning | None, n: int, generator: torch.Generator | None) -> Conditioning | None:
        """Per-sample dropout of conditioning fields to their null value."""
        if cond is None:
            return None
        changes = {}
        for k, p in self.cond_dropout.items():
            v = getattr(cond, k)
            if v is None or p == 0:
                continue
            keep = torch.rand(n, generator=generator, device=v.device) >= p  # [B]
            changes[k] = v * keep.to(v.dtype).reshape(-1, *[1] * (v.ndim - 1))
        return cond.replace(**changes)

    def __call__(self, denoiser: Denoiser | torch.nn.Module, x0: Tensor, cond: Conditioning | None = None, *,
                 generator: torch.Generator | None = None, sigma: Tensor | None = None,
                 noise: Tensor | None = None) -> Tensor:
        """x0: [B, C, *S] clean data. Pass sigma [B] and noise to evaluate at fixed points."""
        B = x0.shape[0]
        if sigma is None:
            sigma = self.sample_sigma(B, generator, x0.device)
        if noise is None:
            noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        cond = self.drop(cond, B, generator)
        s = sigma.reshape(-1, *[1] * (x0.ndim - 1))
        sd = getattr(denoiser, "module", denoiser).sigma_data  # .module: unwrap DDP
        weight = (s**2 + sd**2) / (s * sd) ** 2
        D = denoiser(x0 + s * noise, sigma, cond)
        error = weight * (D - x0) ** 2
        if self.cell_weight is not None:
            error = error * self.cell_weight(x0)
        return error.flatten(1).mean(1)
