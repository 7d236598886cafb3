"""The learned terrain generator: a style-conditioned base model, then x4 super-resolution stages.

Both models are EDM denoisers trained by ``backend.training.train_terrain`` and shipped in
``models/``. Heights live in the networks' space (per-map [-1, 1]); the artist's world size and
relief turn them into metres only at the end, so the models learn shapes and the user owns scale.

Every level is sampled at the scale it was trained at (the base model's 120 m cells, the x4
super-resolution's 30 m for the shipped models), so terrain features keep their size in metres
whatever world size and resolution the artist asks for (``plan_extent``):
  1. base: noise -> 64² map with classifier-free guidance over style weights and sliders;
  2. if the requested cells are finer than the base's: upsample x4 (bicubic) and sample the residual
     detail with the super-resolution model conditioned on that upsampling;
  3. erosion stage: a few steps of stream power and hillslope diffusion on the whole sampled map
     (``backend.simulation.landscape``) carve connected drainage into it and drain the pits;
  4. cut out the world's share of that map (or, for a world bigger than one map, sample it as a region
     of the infinite world), resample to the requested grid (corners kept) and scale to metres.
Every step streams a preview of the world: the coarse map first, then the refined one, then the eroded one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

from backend.diffusion.guidance import ClassifierFreeGuidance
from backend.diffusion.preconditioning import Conditioning
from backend.diffusion.samplers import get_sampler
from backend.diffusion.schedules import karras_sigmas
from backend.diffusion.tiling import MultiDiffusion, even_windows
from backend.grids import resample, upsample
from backend.models.shipped import MODELS_DIR, ShippedModels
from backend.models.terrain import QUALITY, SamplingSettings, TerrainModel
from backend.simulation.finishing import Finish, finish, finish_for_styles
from backend.simulation.landscape import StreamPower, stage_for_styles
from backend.simulation.surrogate_stage import run_stage
from backend.terrain import Heightfield
from backend.world.seeding import tile_seed
from backend.world.region import sample_map

from .base import GenerateRequest, Interrupt, StepCallback

PREVIEW_MAX = 256


@dataclass(frozen=True)
class SuperresWindows:
    """Super-resolution of a canvas wider than ``whole_up_to`` fine cells in overlapping windows of about
    ``window`` cells (MultiDiffusion, one window per network call).

    On a CPU the U-Net's activations at 1024² (64 MB each) fall out of the cache: a network call costs 1.5 s
    per million cells on the whole 1024² canvas against 0.8 in 272-cell windows (2-core Xeon, 2 threads).
    Per denoising step at 1024² (windows overlapping by 16): whole 1.57 s, 16 windows of 272 0.98 s, 25 of
    224 1.06 s, 36 of 192 1.15 s; at 512²: whole 0.32 s, 4 windows of 272 0.23 s, 9 of 192 0.28 s. So
    the windows' overlap pays for itself, and the fewest windows near 272 cells cost least. The windowed
    1024² map's detail (heights less their 4-cell mean) is 0.5 % weaker than the whole canvas's and its
    steepest cell 1.013x the whole canvas's steepest (no window edge shows). A map up to one model map
    runs whole (as trained). Those timings are float32's; where the models serve in bfloat16 the windows
    still pay at 1024² (an interactive map 6.4 s against 7.3 whole) and are on par at 512² (1.55 vs 1.49 s).
    """

    window: int = 288
    overlap: int = 16
    whole_up_to: int = 256


SUPERRES_WINDOWS = {"cpu": SuperresWindows()}  # a GPU runs any canvas whole


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

    ``noise`` has the fine shape. The model is fully convolutional, so any size works. The callback's
    info also holds ``estimate``: the fine map as the step's denoised residual makes it.
    """
    up = upsample(coarse, model.meta["factor"])
    scale = model.meta["residual_scale"]
    sigmas = _sigmas(settings.superres_steps, settings.superres_sigma_max, model.device)
    x = noise.to(model.device) * sigmas[0]
    step = None if callback is None else lambda info: callback({**info, "estimate": up + scale * info["denoised"]})
    denoiser = model.denoiser
    tiles = SUPERRES_WINDOWS.get(model.device.type)
    if tiles is not None and max(up.shape[-2:]) > tiles.whole_up_to:
        window, stride = even_windows(max(up.shape[-2:]), tiles.window, tiles.overlap)
        denoiser = MultiDiffusion(model.denoiser, window, stride, max_batch=1)
    residual = get_sampler(settings.sampler)(denoiser, x, sigmas, cond=cond.replace(spatial=up), callback=step)
    return up + scale * residual


def style_noise(seed: int, style_weights: dict[str, float], level: int, size: int) -> Tensor:
    """Unit noise [1, 1, size, size] keyed by (seed, style, level): each style draws its own, and a mix
    blends its styles' draws with weights normalised to keep unit variance.

    With one noise for every style the sampler maps a seed to nearly the same layout whatever the style
    (alpine and glacial valleys correlated 0.96); keyed noise lets the style, not the seed, decide the large
    form, and a mix still moves continuously between its styles' maps as the weights change.
    """
    total = torch.zeros(1, 1, size, size)
    for name, weight in sorted(style_weights.items()):
        rng = torch.Generator().manual_seed(tile_seed(seed, (0, 0), level, f"style:{name}"))
        total += weight * torch.randn(1, 1, size, size, generator=rng)
    return total / math.sqrt(sum(w * w for w in style_weights.values()))


def to_metres(x: Tensor, relief_m: float, sea_fraction: float) -> Tensor:
    """Network-space map [H, W] -> metres: min..max spans relief_m, sea_fraction of the area below 0 m."""
    low, high = x.min(), x.max()
    h = (x - low) / (high - low).clamp_min(1e-6) * relief_m
    if sea_fraction > 0:
        h = h - torch.quantile(h.flatten().double(), min(sea_fraction, 1.0)).float()
    return h


@dataclass(frozen=True)
class Extent:
    """How a request's world is sampled at the models' own scale (the scale they were trained at).

    The artist's world spans ``cells`` samples of level ``levels - 1`` (the base level's cells, or the
    super-resolution's finer ones). One canvas of ``canvas`` base cells per side is sampled whole (one model
    map, or for a bigger world the world rounded up to whole U-Net sizes: the models are convolutional) and
    the world cut from its centre; a world too big for one canvas (``canvas`` 0) is a region of the infinite world. Either
    way the result is then resampled to the requested grid, so a mountain is as wide in metres at any
    resolution.
    """

    levels: int  # 1: the base level is fine enough for the requested cells; 2: one super-resolution
    cells: int  # samples per side at that level's scale that span the requested world
    canvas: int  # base cells per side of the canvas sampled whole; 0 = a region of the infinite world
    factor: int  # finest-level cells per base cell

    @property
    def is_region(self) -> bool:
        return self.canvas == 0

    @property
    def shown(self) -> float:
        """The world's share of the canvas side (1 for a region: it is sampled to size)."""
        return 1.0 if self.is_region else self.cells / (self.canvas * self.factor)


MIN_CELLS = 8  # a world smaller than this many model cells is a crop of that many (one smooth slope)
MAX_CELLS = 8192  # model cells per side: beyond, a request is refused (memory and minutes, not seconds)
# A world bigger than one model map is sampled whole on a canvas of up to this many maps per side (cost in
# proportion to its area; the base model's attention then sees at most 4x4 maps' tokens); beyond, it is a
# region of the infinite world (overlapping windows with wide context: seamless tiles, several times the cost).
# Like one model map, the canvas is the world itself, rounded up to whole U-Net sizes (multiples of 16).
CANVAS_MAX_MAPS, CANVAS_ALIGN = 4, 16


def plan_extent(size_m: float, cell_size_m: float, base_cell_m: float, base_resolution: int, factor: int) -> Extent:
    """The level and number of model cells that span a world of size_m metres at cell_size_m per cell."""
    levels = 1 if cell_size_m >= base_cell_m else 2
    finest = factor ** (levels - 1)
    scale = base_cell_m / finest
    cells = max(MIN_CELLS, round(size_m / scale) + 1)  # the world's size to within half a model cell
    if cells > MAX_CELLS:
        raise ValueError(f"a {size_m / 1000:g} km world needs {cells}² cells at the models' {scale:g} m scale; "
                         f"the most is {MAX_CELLS}² ({(MAX_CELLS - 1) * scale / 1000:g} km)")
    canvas = base_resolution
    if cells > base_resolution * finest:
        canvas = math.ceil(cells / finest / CANVAS_ALIGN) * CANVAS_ALIGN
    return Extent(levels, cells, canvas if canvas <= CANVAS_MAX_MAPS * base_resolution else 0, finest)


def centre(x: Tensor, fraction: float) -> Tensor:
    """The central `fraction` of a [..., n, n] map (at least 2 samples), which every level shares."""
    n = x.shape[-1]
    k = min(n, max(2, round(n * fraction)))
    lo = (n - k) // 2
    return x[..., lo:lo + k, lo:lo + k]


class DiffusionGenerator:
    """Learned terrain from the shipped weights; deterministic for a fixed seed and device."""

    name = "diffusion"

    def __init__(self, device: str = "cpu", models_dir: str | Path = MODELS_DIR):
        self.models = ShippedModels.load(models_dir, device)
        self.device = self.models.device
        self.base, self.superres = self.models.base, self.models.superres
        self.memory, self.profile = self.models.memory, self.models.profile
        self.styles = tuple(self.base.meta["style_names"])
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

    def native_size_m(self, resolution: int) -> float:
        """The world size at which `resolution` samples are the models' finest cells (no resampling)."""
        return (resolution - 1) * self.superres.meta["cell_size_m"]

    def extent(self, request: GenerateRequest) -> Extent:
        """Where the request's world lies at the models' scale (raises ValueError for a world too big)."""
        return plan_extent(request.size_m, request.cell_size, self.base.meta["cell_size_m"],
                           self.base.meta["resolution"], self.superres.meta["factor"])

    def generate(self, request: GenerateRequest, on_step: StepCallback,
                 interrupt: Interrupt | None = None) -> Heightfield:
        cond = self.base.conditioning(request.style_weights, request.sliders)  # checks the style names
        extent = self.extent(request)
        settings = self.settings(request)
        relief = request.height_m * (0.2 + 0.8 * request.slider("elevation_range", 1.0))
        sea = request.sliders.get("sea_level",
                                  sum(w * self.base.meta["sea_fraction"][s] for s, w in request.style_weights.items()))
        shown = extent.shown

        def show(step: int, steps: int, x0: Tensor) -> None:
            """Stream the current estimate x0 ([h, w] network space) of the world as a preview in metres."""
            world = centre(x0, shown)
            preview = resample(world[None, None], min(PREVIEW_MAX, world.shape[-1]))[0, 0]
            on_step(step, steps, to_metres(preview, relief, sea).cpu().numpy().astype(np.float32))

        stage = stage_for_styles(request.erosion_stage, request.style_weights)  # none for pure dunes
        erosion_steps = 0 if stage is None else stage.steps
        sampling_steps = settings.base_steps + (extent.levels - 1) * settings.superres_steps

        def sampled(step: int, steps: int, x0: Tensor) -> None:
            """A sampler step's preview; the progress total counts the erosion steps still to come."""
            show(step, steps + erosion_steps, x0)

        with torch.no_grad():
            if extent.is_region:
                x = sample_map(self.base, self.superres, cond, request.guidance, settings, request.seed,
                               extent.cells, sampled, interrupt, levels=extent.levels)
            else:
                x = self._sample_canvas(cond, request, settings, extent, sampled)
            if stage is not None:
                x = self._erode(x, relief, extent, stage, finish_for_styles(request.style_weights), show,
                                sampling_steps, request.erosion_engine)
            x = x if extent.is_region else centre(x, shown)
            heights = to_metres(resample(x, request.resolution)[0, 0], relief, sea)
        dominant = max(request.style_weights, key=request.style_weights.__getitem__)
        return Heightfield(heights.cpu().numpy().astype(np.float32), request.cell_size, style=dominant)

    def _erode(self, x: Tensor, relief: float, extent: Extent, process: StreamPower, finishing: Finish,
               show: Callable[[int, int, Tensor], None], steps_before: int, engine: str) -> Tensor:
        """The erosion stage (stream power by ``engine``, ``surrogate_stage.run_stage``, then the style's
        finish) on the whole sampled map [1, 1, n, n] (a margin around a cut-out world), in metres at the
        sampled level's cell size; its previews continue the sampler's step count."""
        cell = self.base.meta["cell_size_m"] / self.superres.meta["factor"] ** (extent.levels - 1)
        total = steps_before + process.steps
        metres = x[0, 0].double().cpu().numpy() * (relief / 2)
        eroded, _ = run_stage(metres, cell, process, engine, self.models.erosion,
                              lambda i, _, z: show(steps_before + i, total, torch.from_numpy(z).float()))
        finished = finish(eroded, cell, finishing) / (relief / 2)
        return torch.from_numpy(finished).float()[None, None].to(x.device)

    def _sample_canvas(self, cond: Conditioning, request: GenerateRequest, settings: SamplingSettings,
                       extent: Extent, show: Callable[[int, int, Tensor], None]) -> Tensor:
        """One canvas [1, 1, n, n] sampled whole: the base map, then (levels=2) its super-resolution."""
        total = settings.base_steps + (extent.levels - 1) * settings.superres_steps
        n = extent.canvas
        noise = style_noise(request.seed, request.style_weights, 0, n)  # CPU noise: the same map on any device
        x = sample_base(self.base, cond, request.guidance, settings, noise,
                        lambda info: show(info["i"] + 1, total, info["denoised"][0, 0]))
        if extent.levels == 2:
            fine = n * self.superres.meta["factor"]
            x = super_resolve(self.superres, x, cond, settings, style_noise(request.seed, request.style_weights, 1, fine),
                              lambda info: show(settings.base_steps + info["i"] + 1, total, info["estimate"][0, 0]))
        return x
