"""The learned terrain generator: a style-conditioned base model, then x4 super-resolution stages.

Both models are EDM denoisers trained by ``backend.training.train_terrain`` and shipped in
``models/``. Heights live in the networks' space (per-map [-1, 1]); the artist's world size and
relief turn them into metres only at the end, so the models learn shapes and the user owns scale.

Pipeline for a request of resolution R:
  1. base: noise -> 64² map with classifier-free guidance over style weights and sliders;
  2. while the map is smaller than R: upsample x4 (bicubic) and sample the residual detail with
     the super-resolution model conditioned on that upsampling;
  3. resample to R² (corners kept: R samples span the world) and scale to metres.
Every sampler step streams a preview: the coarse map first, then the refined one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from backend.data.datasets import upsample
from backend.diffusion.guidance import ClassifierFreeGuidance
from backend.diffusion.preconditioning import Conditioning
from backend.diffusion.samplers import get_sampler
from backend.diffusion.schedules import karras_sigmas
from backend.terrain import Heightfield
from backend.training.checkpoints import LoadedModel, read_metadata
from backend.world.region import sample_map

from .base import GenerateRequest, Interrupt, StepCallback
from .profiles import PROFILE_FILE, ProfileModel

MODELS_DIR = Path(__file__).resolve().parents[2] / "models"
BASE_FILE, SUPERRES_FILE = "terrain_base.safetensors", "terrain_superres.safetensors"
MEMORY_FILE = "terrain_memory.safetensors"  # optional: the memory-conditioned base model (backend.memory)
PREVIEW_MAX = 256
LARGE_MAP = 1024  # from this resolution on: MultiDiffusion base canvas + one super-resolution


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


def _sigmas(steps: int, sigma_max: float, device: torch.device) -> Tensor:
    return karras_sigmas(steps, sigma_max=sigma_max).to(device)


def sample_base(model: TerrainModel, cond: Conditioning, guidance: float, settings: SamplingSettings,
                noise: Tensor, callback: Callable[[dict[str, Any]], None] | None = None) -> Tensor:
    """A [B, 1, s, s] map in network space from unit noise [B, 1, s, s]."""
    sigmas = _sigmas(settings.base_steps, settings.base_sigma_max, model.device)
    denoiser = ClassifierFreeGuidance(model.denoiser, guidance)
    x = noise.to(model.device) * sigmas[0]
    return get_sampler(settings.sampler)(denoiser, x, sigmas, cond=cond, callback=callback)


def super_resolve(model: TerrainModel, coarse: Tensor, cond: Conditioning, settings: SamplingSettings,
                  noise: Tensor, callback: Callable[[dict[str, Any]], None] | None = None) -> Tensor:
    """coarse [B, 1, h, w] -> [B, 1, f h, f w]: the bicubic upsampling plus sampled residual detail.

    ``noise`` has the fine shape. The model is fully convolutional, so any size works.
    """
    up = upsample(coarse, model.meta["factor"])
    sigmas = _sigmas(settings.superres_steps, settings.superres_sigma_max, model.device)
    x = noise.to(model.device) * sigmas[0]
    residual = get_sampler(settings.sampler)(model.denoiser, x, sigmas, cond=cond.replace(spatial=up),
                                             callback=callback)
    return up + model.meta["residual_scale"] * residual


def to_metres(x: Tensor, relief_m: float, sea_fraction: float) -> Tensor:
    """Network-space map [H, W] -> metres: min..max spans relief_m, sea_fraction of the area below 0 m."""
    low, high = x.min(), x.max()
    h = (x - low) / (high - low).clamp_min(1e-6) * relief_m
    if sea_fraction > 0:
        h = h - torch.quantile(h.flatten().double(), min(sea_fraction, 1.0)).float()
    return h


def resample(x: Tensor, size: int) -> Tensor:
    """[B, C, n, n] -> [B, C, size, size] with corner samples kept (the map spans the same extent)."""
    if x.shape[-1] == size:
        return x
    mode = "area" if size < x.shape[-1] else "bicubic"
    if mode == "area":
        return F.interpolate(x, size=(size, size), mode="area")
    return F.interpolate(x, size=(size, size), mode="bicubic", align_corners=True)


class DiffusionGenerator:
    """Learned terrain from the shipped weights; deterministic for a fixed seed and device."""

    name = "diffusion"

    def __init__(self, device: str = "cpu", models_dir: str | Path = MODELS_DIR, large_map: int = LARGE_MAP):
        self.device = torch.device(device)
        self.large_map = large_map  # resolutions from here on are sampled as a region of the infinite world
        self.base = TerrainModel.load(Path(models_dir) / BASE_FILE, self.device)
        self.superres = TerrainModel.load(Path(models_dir) / SUPERRES_FILE, self.device)
        memory = Path(models_dir) / MEMORY_FILE
        self.memory = TerrainModel.load(memory, self.device) if memory.is_file() else None  # for worlds with memory
        self.styles = tuple(self.base.meta["style_names"])
        profile = Path(models_dir) / PROFILE_FILE  # the curve guides' 1D model, optional
        self.profile = ProfileModel.load(profile, self.device) if profile.is_file() else None
        self._warm_up()

    def _warm_up(self) -> None:
        """One tiny run so the first artist request does not pay for lazy initialisation."""
        request = GenerateRequest(style_weights={self.styles[0]: 1.0}, resolution=128, steps=1,
                                  generator=self.name)
        self.generate(request, lambda step, total, preview: None)

    def settings(self, request: GenerateRequest) -> SamplingSettings:
        chosen = QUALITY[request.quality]
        if request.steps is None:
            return chosen
        return SamplingSettings(request.steps, chosen.superres_steps, chosen.sampler,
                                chosen.base_sigma_max, chosen.superres_sigma_max)

    def generate(self, request: GenerateRequest, on_step: StepCallback,
                 interrupt: Interrupt | None = None) -> Heightfield:
        cond = self.base.conditioning(request.style_weights, request.sliders)  # checks the style names
        settings = self.settings(request)
        size = self.base.meta["resolution"]
        stages = 0
        while size < request.resolution:
            size *= self.superres.meta["factor"]
            stages += 1
        total = settings.base_steps + stages * settings.superres_steps
        relief = request.height_m * (0.2 + 0.8 * request.slider("elevation_range", 1.0))
        sea = request.sliders.get("sea_level",
                                  sum(w * self.base.meta["sea_fraction"][s] for s, w in request.style_weights.items()))

        def show(step: int, steps: int, x0: Tensor) -> None:
            """Stream the current estimate x0 ([h, w] network space) as a preview in metres."""
            preview = resample(x0[None, None], min(PREVIEW_MAX, x0.shape[-1]))[0, 0]
            on_step(step, steps, to_metres(preview, relief, sea).cpu().numpy().astype(np.float32))

        def report(info: dict[str, Any], offset: int, upsampled: Tensor | None = None) -> None:
            x0 = info["denoised"][0, 0]
            if upsampled is not None:
                x0 = upsampled[0, 0] + self.superres.meta["residual_scale"] * x0
            show(offset + info["i"] + 1, total, x0)

        rng = torch.Generator().manual_seed(request.seed)  # CPU noise: the same seed gives the same map anywhere
        n = self.base.meta["resolution"]
        with torch.no_grad():
            if request.resolution >= self.large_map:  # a region of the infinite world: models stay at their scale
                x = sample_map(self.base, self.superres, cond, request.guidance, settings, request.seed,
                               request.resolution, show, interrupt)
            else:
                x = sample_base(self.base, cond, request.guidance, settings,
                                torch.randn(1, 1, n, n, generator=rng), lambda info: report(info, 0))
                for stage in range(stages):
                    fine = x.shape[-1] * self.superres.meta["factor"]
                    up = upsample(x, self.superres.meta["factor"])
                    offset = settings.base_steps + stage * settings.superres_steps
                    x = super_resolve(self.superres, x, cond, settings,
                                      torch.randn(1, 1, fine, fine, generator=rng),
                                      lambda info, o=offset, u=up: report(info, o, u))
            heights = to_metres(resample(x, request.resolution)[0, 0], relief, sea)
        dominant = max(request.style_weights, key=request.style_weights.__getitem__)
        return Heightfield(heights.cpu().numpy().astype(np.float32), request.cell_size, style=dominant)


def shipped_models_present(models_dir: str | Path = MODELS_DIR) -> bool:
    return all((Path(models_dir) / f).is_file() for f in (BASE_FILE, SUPERRES_FILE))


def shipped_styles(models_dir: str | Path = MODELS_DIR) -> tuple[str, ...]:
    """Style names from the base model's metadata, read without loading the weights."""
    return tuple(read_metadata(Path(models_dir) / BASE_FILE)["config"]["style_names"])
