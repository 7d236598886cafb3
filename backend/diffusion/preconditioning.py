"""EDM preconditioning (Karras et al. 2022, Table 1): the denoiser D(x, sigma, cond) -> x0.

The wrapper is where the network's raw output becomes an estimate of the clean field; samplers,
guidance and losses only ever call D. Inputs and outputs are float32 whatever the network runs in.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import Tensor, nn

_FIELDS = ("style_weights", "sliders", "spatial", "memory")


@dataclass(frozen=True)
class Conditioning:
    """Everything the network is conditioned on besides x and sigma; absent = None.

    The null value of every field (classifier-free guidance, condition dropout) is zeros_like.
    """

    style_weights: Tensor | None = None  # [B, n_styles], mixture weights summing to 1; zeros = no style
    sliders: Tensor | None = None  # [B, n_sliders], 0 = neutral
    spatial: Tensor | None = None  # [B, cond_channels, *S]: low-res, mask, known values, neighbours...
    memory: Tensor | None = None  # [B, T, D_mem] tokens read by cross-attention

    def replace(self, **changes: Tensor | None) -> Conditioning:
        return dataclasses.replace(self, **changes)

    def map(self, fn: Callable[[Tensor], Tensor]) -> Conditioning:
        """Apply fn to every present tensor (device moves, repeats, slicing)."""
        return Conditioning(**{k: None if v is None else fn(v) for k, v in self.as_dict().items()})

    def nulled(self, fields: tuple[str, ...]) -> Conditioning:
        """The same conditioning with the named fields set to their null (zeros)."""
        unknown = set(fields) - set(_FIELDS)
        if unknown:
            raise ValueError(f"unknown conditioning fields {sorted(unknown)}; known: {_FIELDS}")
        return self.replace(**{k: torch.zeros_like(v) for k in fields if (v := getattr(self, k)) is not None})

    def as_dict(self) -> dict[str, Tensor | None]:
        return {k: getattr(self, k) for k in _FIELDS}

    @staticmethod
    def cat(conds: list[Conditioning]) -> Conditioning:
        """Concatenate along the batch; a field must be present in all or none."""
        out: dict[str, Tensor | None] = {}
        for k in _FIELDS:
            vals = [getattr(c, k) for c in conds]
            present = [v is not None for v in vals]
            if any(present) and not all(present):
                raise ValueError(f"conditioning field {k!r} present in only some of {len(conds)} batches")
            out[k] = torch.cat(vals) if all(present) else None  # type: ignore[arg-type]
        return Conditioning(**out)


class Denoiser(nn.Module):
    """D(x; sigma) = c_skip x + c_out F(c_in x; c_noise), with the EDM coefficients.

    sigma_data is the data's standard deviation (the trainer measures it); sigma may be a float,
    a 0-d tensor or a [B] tensor.
    """

    def __init__(self, net: nn.Module, sigma_data: float = 0.5):
        super().__init__()
        if not sigma_data > 0:
            raise ValueError(f"sigma_data must be positive, got {sigma_data}")
        self.net = net
        self.sigma_data = float(sigma_data)

    def coefficients(self, sigma: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        sd = self.sigma_data
        c_skip = sd**2 / (sigma**2 + sd**2)
        c_out = sigma * sd / (sigma**2 + sd**2).sqrt()
        c_in = 1 / (sd**2 + sigma**2).sqrt()
        c_noise = sigma.log() / 4
        return c_skip, c_out, c_in, c_noise

    def forward(self, x: Tensor, sigma: Tensor | float, cond: Conditioning | None = None) -> Tensor:
        x = x.to(torch.float32)  # x: [B, C, *S]
        sigma = torch.as_tensor(sigma, dtype=torch.float32, device=x.device).reshape(-1)
        if sigma.numel() == 1:
            sigma = sigma.expand(x.shape[0])
        if sigma.shape[0] != x.shape[0]:
            raise ValueError(f"sigma has {sigma.shape[0]} entries for a batch of {x.shape[0]}")
        s = sigma.reshape(-1, *[1] * (x.ndim - 1))  # [B, 1, ...]
        c_skip, c_out, c_in, _ = self.coefficients(s)
        kwargs: dict[str, Any] = {} if cond is None else cond.as_dict()
        F_x = self.net(c_in * x, sigma.log() / 4, **kwargs)
        return c_skip * x + c_out * F_x.to(torch.float32)

    def config_dict(self) -> dict[str, Any]:
        """What `backend.models.inference` needs to rebuild this denoiser."""
        net_cfg = getattr(self.net, "config", None)
        if net_cfg is None or not hasattr(net_cfg, "to_dict"):
            raise ValueError(f"network {type(self.net).__name__} has no serialisable .config")
        return {"unet": net_cfg.to_dict(), "sigma_data": self.sigma_data}
