"""The terrain denoisers as serving holds them, and the quality levels they are sampled at."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from backend.diffusion.preconditioning import Conditioning

from .inference import LoadedModel


@dataclass(frozen=True)
class SamplingSettings:
    """Sampler and step counts of one quality level."""

    base_steps: int
    superres_steps: int
    sampler: str = "dpmpp_2m"
    base_sigma_max: float = 80.0
    superres_sigma_max: float = 10.0  # the residual has unit std: less noise hides it completely


# Super-resolution needs its steps: with 2 the residual comes out too smooth (spectral slope of the
# result 0.4 steeper than the corpus's), 4 recovers most of the fine detail (reports/terrain_models).
QUALITY: dict[str, SamplingSettings] = {
    "interactive": SamplingSettings(base_steps=8, superres_steps=4),
    "full": SamplingSettings(base_steps=32, superres_steps=16),
}


class TerrainModel(LoadedModel):
    """A loaded terrain denoiser and the metadata it was trained with (see train_terrain.build)."""

    # Half the time where the CPU has bfloat16 (256² interactive 0.38 vs 0.52 s); maps within about 1 % of the
    # relief (RMS) of float32's, the model report's figures unchanged.
    bfloat16_where_native = True

    def conditioning(self, style_weights: dict[str, float], sliders: dict[str, float]) -> Conditioning:
        """Style mix as a weight vector; unsent sliders take the style mix's training mean."""
        names = self.meta["style_names"]
        unknown = sorted(set(style_weights) - set(names))
        if unknown:
            raise ValueError(f"unknown style(s) {unknown}; available: {names}")
        weights = torch.tensor([[style_weights.get(n, 0.0) for n in names]])
        means = self.meta["slider_means"]
        values = [sliders[s] if s in sliders else sum(w * means[st][i] for st, w in style_weights.items())
                  for i, s in enumerate(self.meta["slider_names"])]
        return Conditioning(style_weights=weights, sliders=torch.tensor([values]) * 2 - 1).map(
            lambda t: t.float().to(self.device))
