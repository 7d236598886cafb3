"""The memory's slider readout: the feature sliders a voxel region's committed chunks imply, read from memory tokens.

The voxel memory adapter, trained on denoising error alone, barely steers what is drawn: the region's sliders are
worth about 3 % of the voxel model's error at sigma 5, so that loss rewards region-level cave density little
(``reports/voxel_memory/``). The sliders themselves steer the model strongly under their classifier-free
guidance. So this small head regresses a region's sliders (cave_density, overhang in [0, 1], as the corpus drew
them) from the tokens a chunk being generated reads (``VoxelMemory.read``), and serving conditions the chunk on
that estimate where the artist left a slider unset (``backend.world.voxel_memory.MemoryChunks``).

It pools the read tokens by attention (``heads`` learned scores per token: which tokens tell, e.g. present
neighbours over absent ones) and maps the pooled values to the sliders through a small MLP and a sigmoid.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class ReadoutConfig:
    dim: int  # D: width of the memory tokens it reads
    slider_names: tuple[str, ...] = ("cave_density", "overhang")
    hidden: int = 32
    heads: int = 4
    # The sliders ``estimate`` gives: those the readout read well on held-out regions (training decides); an
    # estimate no better than a constant would only pull every chunk of a world toward the corpus's mean.
    served: tuple[str, ...] = ("cave_density", "overhang")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ReadoutConfig:
        return cls(**{**d, "slider_names": tuple(d["slider_names"]), "served": tuple(d["served"])})

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "slider_names": list(self.slider_names), "served": list(self.served)}


class SliderReadout(nn.Module):
    """Read tokens [B, T, D] -> slider estimates [B, S] in (0, 1)."""

    def __init__(self, cfg: ReadoutConfig):
        super().__init__()
        self.config = cfg
        self.norm = nn.LayerNorm(cfg.dim)
        self.score = nn.Linear(cfg.dim, cfg.heads)
        self.value = nn.Linear(cfg.dim, cfg.hidden)
        self.head = nn.Sequential(nn.Linear(cfg.heads * cfg.hidden, cfg.hidden), nn.SiLU(),
                                  nn.Linear(cfg.hidden, len(cfg.slider_names)))

    def forward(self, tokens: Tensor) -> Tensor:
        t = self.norm(tokens)
        attn = torch.softmax(self.score(t), dim=1)  # [B, T, H]: each head's weights over the tokens
        pooled = attn.transpose(1, 2) @ self.value(t)  # [B, H, hidden]
        return torch.sigmoid(self.head(pooled.flatten(1)))

    def estimate(self, tokens: Tensor) -> dict[str, float]:
        """The served sliders one read [1, T, D] implies, by name."""
        with torch.no_grad():
            values = self(tokens.to(next(self.parameters()).device))[0].cpu()
        return {name: float(v) for name, v in zip(self.config.slider_names, values) if name in self.config.served}
