"""Any rectangle of an unbounded learned world, from nothing but the world seed and its coordinates.

A world is one infinite canvas per level (the base model's coarse cells, then each x`factor`
super-resolution). Its initial noise is cut from fixed blocks seeded by (seed, block coords, level)
(``backend.world.seeding``), and a region is sampled with MultiDiffusion on a canvas around it whose
windows sit on a world-anchored grid. So a region depends only on the noise near it, never on what
was asked before (InfiniteDiffusion-style O(1) random access), and big maps are just big regions.

Known values (artist-edited tiles) pin the sample by inpainting at every level, and the generated
cells lean into them (the gap spread over BASE_REACH / SUPERRES_REACH cells), so a neighbour generated
later continues the edit instead of meeting it at a wall.

Coordinates are in cells of the finest level: rows grow south, columns east; cell (r, c) of level
L + 1 lies in cell (r // factor, c // factor) of level L.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import Tensor

from backend.diffusion.guidance import ClassifierFreeGuidance, Inpainting
from backend.diffusion.preconditioning import Conditioning
from backend.diffusion.samplers import DenoiserFn, get_sampler
from backend.diffusion.schedules import karras_sigmas
from backend.diffusion.tiling import MultiDiffusion
from backend.grids import downsample, upsample
from backend.models.terrain import SamplingSettings
from backend.world.seeding import tile_generator

NOISE_BLOCK = 64  # cells per side of one seeded noise block, at every level
# Base-level context around a region on each side, in windows. A canvas edge disturbs the sample about a
# window deep; at 1.5 windows two blocks' canvases agree on their shared cells (reports/world_tiling).
BASE_MARGIN_WINDOWS = 1.5
SUPERRES_MARGIN = 32  # fine cells of context around a region on each side
# How far the gap between known (artist-edited) cells and the sample spreads into the generated cells around
# them, in cells of each level (guidance.spread_mismatch): the base level carries an edit's level over ~2 km
# (16 cells of 120 m), so a neighbour generated later continues a raised plateau instead of keeping the old
# ground level behind a wall; the super-resolution has only detail left to join (4 cells of 30 m).
BASE_REACH, SUPERRES_REACH = 16, 4
SUPERRES_WINDOW, SUPERRES_STRIDE = 512, 384  # fine cells: one window per tile, bounded memory on big maps
ALIGN = 16  # canvas edges on multiples of this (U-Net sizes must divide 2**levels)
# Base windows per network call (x2 with guidance): on the CPU small batches are cheapest per window
# (benchmarks/results/world_cpu.txt: 5.2 ms a window at 8 and 32, 5.4 at 64); a GPU wants many.
BASE_WINDOW_BATCH = {"cpu": 8, "cuda": 64}

Span = tuple[int, int]  # [start, stop) in cells of one level
Progress = Callable[[dict[str, Any]], None]  # the samplers' callback (progress, cancellation)
Interrupt = Callable[[], None]  # called between batches of windows; raises Cancelled to stop mid-step
WindowMemory = Callable[[list[tuple[int, int]]], Tensor]  # base windows' world cells -> memory tokens [n, T, D]


@dataclass(frozen=True)
class Known:
    """Fixed values over a finest-level rectangle: heights in network space and a 0/1 mask."""

    rows: Span
    cols: Span
    values: Tensor  # [H, W]
    mask: Tensor  # [H, W], 1 = keep


@dataclass(frozen=True)
class Stage:
    """One level's sampling: steps, the noise level it starts from and the sampler's name."""

    steps: int
    sigma_max: float
    sampler: str


def stages_for(settings: SamplingSettings, levels: int) -> list[Stage]:
    """The base stage, then levels - 1 super-resolution stages, of one quality setting."""
    return [Stage(settings.base_steps, settings.base_sigma_max, settings.sampler)] + \
        [Stage(settings.superres_steps, settings.superres_sigma_max, settings.sampler)] * (levels - 1)


def world_noise(seed: int, rows: Span, cols: Span, level: int) -> Tensor:
    """Unit noise [H, W] of a world level over rows x cols, the same whichever rectangle asks for it."""
    b = NOISE_BLOCK
    block_rows = range(rows[0] // b, (rows[1] - 1) // b + 1)
    block_cols = range(cols[0] // b, (cols[1] - 1) // b + 1)
    blocks = [torch.cat([torch.randn(b, b, generator=tile_generator(seed, (bc, br), level, "noise"))
                         for bc in block_cols], dim=1) for br in block_rows]
    full = torch.cat(blocks, dim=0)
    r0, c0 = block_rows[0] * b, block_cols[0] * b
    return full[rows[0] - r0:rows[1] - r0, cols[0] - c0:cols[1] - c0]


def base_margin(window: int) -> int:
    """Base cells of context on each side of a region, for a base model of `window`² maps."""
    return math.ceil(BASE_MARGIN_WINDOWS * window)


def canvas_span(span: Span, margin: int, minimum: int) -> Span:
    """`span` widened by `margin`, aligned outward to ALIGN and at least `minimum` long."""
    start = math.floor((span[0] - margin) / ALIGN) * ALIGN
    stop = math.ceil((span[1] + margin) / ALIGN) * ALIGN
    stop = max(stop, start + math.ceil(minimum / ALIGN) * ALIGN)
    return start, stop


def coarse_span(span: Span, factor: int) -> Span:
    """The cells of the coarser level that contain `span`."""
    return span[0] // factor, -(-span[1] // factor)


def _known_at(known: Known | None, rows: Span, cols: Span, factor: int) -> tuple[Tensor, Tensor] | None:
    """Known values and mask on a canvas of a level `factor` times coarser than the finest (area mean;
    a coarse cell is known only when all its fine cells are)."""
    if known is None:
        return None
    fine_rows, fine_cols = (rows[0] * factor, rows[1] * factor), (cols[0] * factor, cols[1] * factor)
    values = torch.zeros(fine_rows[1] - fine_rows[0], fine_cols[1] - fine_cols[0])
    mask = torch.zeros_like(values)
    r0, r1 = max(known.rows[0], fine_rows[0]), min(known.rows[1], fine_rows[1])
    c0, c1 = max(known.cols[0], fine_cols[0]), min(known.cols[1], fine_cols[1])
    if r0 >= r1 or c0 >= c1:
        return None
    src = (slice(r0 - known.rows[0], r1 - known.rows[0]), slice(c0 - known.cols[0], c1 - known.cols[0]))
    dst = (slice(r0 - fine_rows[0], r1 - fine_rows[0]), slice(c0 - fine_cols[0], c1 - fine_cols[0]))
    mask[dst] = known.mask[src]
    values[dst] = known.values[src] * known.mask[src]
    if not bool(mask.any()):
        return None
    if factor > 1:
        mask = downsample(mask, factor)
        values = downsample(values, factor) / mask.clamp_min(1e-12)
        mask = (mask >= 1 - 1e-6).float()
    return values[None, None], mask[None, None]


def _region_view(callback: Progress | None, level: int, region: tuple[slice, slice],
                 base: Tensor | None = None, scale: float = 1.0) -> Progress | None:
    """The sampler's callback with the level and the requested region's current estimate added:
    ``info['level']`` and ``info['region']`` ([H, W] network space, ``base + scale * denoised``)."""
    if callback is None:
        return None

    def view(info: dict[str, Any]) -> None:
        estimate = info["denoised"][0, 0] * scale + (0 if base is None else base[0, 0])
        callback({**info, "level": level, "region": estimate[region]})

    return view


def _sample(denoiser: DenoiserFn, noise: Tensor, cond: Conditioning, stage: Stage,
            known: tuple[Tensor, Tensor] | None, reach: float, callback: Progress | None) -> Tensor:
    """One level's sampler run, inpainting the known cells (exactly, after the last step) and leaning the
    generated ones into them over `reach` cells."""
    sigmas = karras_sigmas(stage.steps, sigma_max=stage.sigma_max).to(noise.device)
    if known is not None:
        inpaint = Inpainting(denoiser, known[0].to(noise.device), known[1].to(noise.device), reach)
        x = get_sampler(stage.sampler)(inpaint, noise * sigmas[0], sigmas, cond=cond, callback=callback)
        return inpaint.finalize(x)
    return get_sampler(stage.sampler)(denoiser, noise * sigmas[0], sigmas, cond=cond, callback=callback)


@dataclass(frozen=True)
class Canvas:
    """One level's samples [1, 1, H, W] (network space) over world cells rows x cols of that level."""

    x: Tensor
    rows: Span
    cols: Span

    def crop(self, rows: Span, cols: Span) -> Tensor:
        """The samples [H, W] over rows x cols (which must lie inside the canvas)."""
        (r0, r1), (c0, c1) = self.rows, self.cols
        if not (r0 <= rows[0] <= rows[1] <= r1 and c0 <= cols[0] <= cols[1] <= c1):
            raise ValueError(f"rows {rows} x cols {cols} are not inside the canvas {self.rows} x {self.cols}")
        return self.x[(0, 0, *_inside((rows, cols), self.rows, self.cols))]


def level_spans(rows: Span, cols: Span, levels: int, factor: int) -> list[tuple[Span, Span]]:
    """The rectangle each level must produce so that `levels` levels give rows x cols: base first
    (each super-resolution needs SUPERRES_MARGIN fine cells of context around its target)."""
    spans = [(rows, cols)]
    for _ in range(levels - 1):
        r, c = spans[-1]
        spans.append((coarse_span(canvas_span(r, SUPERRES_MARGIN, 0), factor),
                      coarse_span(canvas_span(c, SUPERRES_MARGIN, 0), factor)))
    return spans[::-1]


def sample_base(base: Any, cond: Conditioning, guidance: float, stage: Stage, seed: int, rows: Span, cols: Span,
                known: Known | None = None, scale_to_finest: int = 1, callback: Progress | None = None,
                interrupt: Interrupt | None = None, window_memory: WindowMemory | None = None,
                shown: tuple[Span, Span] | None = None) -> Canvas:
    """The base level on a canvas around rows x cols (``base_margin`` cells of context each side).

    `known` is at the finest level, `scale_to_finest` base-level cells wide; the callback sees the
    estimate over `shown` (default rows x cols). `window_memory` gives each window its memory tokens by
    its world position (a memory-conditioned base model only).
    """
    window = base.meta["resolution"]
    margin = base_margin(window)
    canvas_r, canvas_c = canvas_span(rows, margin, window), canvas_span(cols, margin, window)
    noise = world_noise(seed, canvas_r, canvas_c, 0).to(base.device)[None, None]
    denoiser = MultiDiffusion(ClassifierFreeGuidance(base.denoiser, guidance), window, window // 2,
                              origin=(canvas_r[0], canvas_c[0]), max_batch=BASE_WINDOW_BATCH.get(base.device.type, 8),
                              interrupt=interrupt, window_memory=window_memory)
    view = _region_view(callback, 0, _inside(shown or (rows, cols), canvas_r, canvas_c))
    x = _sample(denoiser, noise, cond, stage, _known_at(known, canvas_r, canvas_c, scale_to_finest), BASE_REACH, view)
    return Canvas(x, canvas_r, canvas_c)


def refine(superres: Any, canvas: Canvas, spans: list[tuple[Span, Span]], cond: Conditioning, stages: list[Stage],
           seed: int, known: Known | None = None, callback: Progress | None = None,
           interrupt: Interrupt | None = None) -> Tensor:
    """Super-resolve a base canvas through spans[1:] (``level_spans``), one stage each: the heights
    [H, W] (network space) over spans[-1]. `known` is at the last level."""
    factor = superres.meta["factor"]
    levels = len(spans)
    x, canvas_r, canvas_c = canvas.x, canvas.rows, canvas.cols
    for level in range(1, levels):
        x, canvas_r, canvas_c = _super_resolve(superres, x, canvas_r, canvas_c, spans[level], cond, stages[level - 1],
                                               seed, level, known, factor ** (levels - 1 - level), callback,
                                               interrupt)
    return Canvas(x, canvas_r, canvas_c).crop(*spans[-1])


def sample_region(base: Any, superres: Any, cond: Conditioning, guidance: float, stages: list[Stage],
                  seed: int, rows: Span, cols: Span, known: Known | None = None,
                  callback: Progress | None = None, interrupt: Interrupt | None = None,
                  window_memory: WindowMemory | None = None) -> Tensor:
    """The world's heights [H, W] (network space) over rows x cols of level len(stages) - 1.

    `base` and `superres` are ``TerrainModel``s (backend.generators.learned); stages[0] samples the
    base level, each further stage one super-resolution. Cells of level L are (`factor` ** (n - 1 - L))
    finest cells wide, so `known` (finest level) is pooled for the coarser levels. `window_memory` gives
    each base window its memory tokens by its world position (a memory-conditioned base model only).
    """
    if not stages:
        raise ValueError("sample_region needs at least the base stage")
    factor = superres.meta["factor"]
    spans = level_spans(rows, cols, len(stages), factor)
    canvas = sample_base(base, cond, guidance, stages[0], seed, *spans[0], known, factor ** (len(stages) - 1),
                         callback, interrupt, window_memory)
    return refine(superres, canvas, spans, cond, stages[1:], seed, known, callback, interrupt)


def _inside(span: tuple[Span, Span], canvas_r: Span, canvas_c: Span) -> tuple[slice, slice]:
    """Where the region `span` (rows, cols) lies in a canvas starting at (canvas_r[0], canvas_c[0])."""
    (r0, r1), (c0, c1) = span
    return slice(r0 - canvas_r[0], r1 - canvas_r[0]), slice(c0 - canvas_c[0], c1 - canvas_c[0])


def _super_resolve(superres: Any, coarse: Tensor, coarse_r: Span, coarse_c: Span, target: tuple[Span, Span],
                   cond: Conditioning, stage: Stage, seed: int, level: int, known: Known | None,
                   scale_to_finest: int, callback: Progress | None,
                   interrupt: Interrupt | None) -> tuple[Tensor, Span, Span]:
    """One x`factor` stage over a canvas around `target`; returns the fine canvas and its spans."""
    factor = superres.meta["factor"]
    canvas_r, canvas_c = canvas_span(target[0], SUPERRES_MARGIN, 0), canvas_span(target[1], SUPERRES_MARGIN, 0)
    up_all = upsample(coarse, factor)
    r0, c0 = canvas_r[0] - coarse_r[0] * factor, canvas_c[0] - coarse_c[0] * factor
    up = up_all[..., r0:r0 + canvas_r[1] - canvas_r[0], c0:c0 + canvas_c[1] - canvas_c[0]]
    scale = superres.meta["residual_scale"]
    fixed = _known_at(known, canvas_r, canvas_c, scale_to_finest)
    if fixed is not None:
        fixed = ((fixed[0].to(up.device) - up) / scale, fixed[1])
    noise = world_noise(seed, canvas_r, canvas_c, level).to(up.device)[None, None]
    window = min(SUPERRES_WINDOW, max(canvas_r[1] - canvas_r[0], canvas_c[1] - canvas_c[0]))
    denoiser = MultiDiffusion(superres.denoiser, window, min(SUPERRES_STRIDE, window),
                              origin=(canvas_r[0], canvas_c[0]), interrupt=interrupt)
    view = _region_view(callback, level, _inside(target, canvas_r, canvas_c), up, scale)
    residual = _sample(denoiser, noise, cond.replace(spatial=up), stage, fixed, SUPERRES_REACH, view)
    return up + scale * residual, canvas_r, canvas_c


def sample_map(base: Any, superres: Any, cond: Conditioning, guidance: float, settings: SamplingSettings,
               seed: int, size: int, on_progress: Callable[[int, int, Tensor], None],
               interrupt: Interrupt | None = None, levels: int = 2) -> Tensor:
    """A size² map [1, 1, size, size] (network space): the region [0, size)² of world `seed` at level
    levels - 1 (cells of that level).

    For maps far bigger than one base map: the base model runs on a canvas by MultiDiffusion and (with
    levels=2) one super-resolution stage (tiled) brings it to size, so every level stays at the scale the
    models were trained for. `on_progress(done, total, estimate)` follows the sampler steps with the map's
    current estimate ([h, w] network space, coarse first, then fine); ``interrupt`` is polled between
    batches of windows.
    """
    stages = stages_for(settings, levels)
    total, done = sum(s.steps for s in stages), itertools.count(1)
    x = sample_region(base, superres, cond, guidance, stages, seed, (0, size), (0, size),
                      callback=lambda info: on_progress(next(done), total, info["region"]), interrupt=interrupt)
    return x[None, None]
