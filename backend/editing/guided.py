"""The masked few-step diffusion edit that turns a brush target into believable terrain, window only.

Recipe for one stroke (see ``brushes`` for the window, weight and target):
  1. the window in network space, normalised by the whole terrain's min/max (so the super-resolution
     residual keeps the scale it was trained at);
  2. the coarse map (area / factor) of the target: kept, SDEdited or re-sampled with the base model
     (regenerate, style paint), inpainted outside the stroke;
  3. the fine residual over the bicubic upsampling, SDEdited from the target's own residual at a small
     noise level (new detail on the moved ground) with Inpainting outside the feathered stroke;
  4. back to metres, and the original float32 values pasted wherever the weight is 0: outside the
     stroke nothing changes, bit for bit, and inside the feather the model blends into its surroundings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np
import scipy.ndimage as ndi
import torch
import torch.nn.functional as F
from torch import Tensor

from backend.diffusion.guidance import ClassifierFreeGuidance, Inpainting, gaussian_blur
from backend.diffusion.preconditioning import Conditioning
from backend.diffusion.samplers import get_sampler
from backend.diffusion.schedules import karras_sigmas
from backend.grids import downsample, upsample
from backend.models.terrain import TerrainModel
from backend.simulation.flow import accumulate, d8_receivers, fill_depressions
from backend.simulation.landscape import EROSION_STAGES, StreamPower, erode, scaled
from backend.simulation.style_specs import STYLES, typical_relief_m

from .brushes import RegionStroke, Stroke, burn_stream, footprint, rounded, stream_breach, stream_cap, target
from .scale import ModelGrid, mesh_margin

# on_step(step, total, window (row0, col0, row1, col1), its heights in metres so far); may raise Cancelled. The
# heights come as a function that makes them: a live dab's steps are never shown, and making each one's (the window
# resampled into the mesh) cost 3 ms of a 34 ms style-paint dab at 128²
EditCallback = Callable[[int, int, tuple[int, int, int, int], Callable[[], np.ndarray]], None]


@dataclass(frozen=True)
class Recipe:
    """How much of each scale one brush kind re-samples (noise levels in units of the data's std)."""

    detail_sigma: float  # fine residual re-sampled from this noise level; 0 = the target as it is
    coarse_sigma: float = 0.0  # coarse map re-sampled by the base model from this level; 0 = kept
    guided: bool = False  # classifier-free guidance on the detail too (the style is the point)
    mixed: bool = False  # the stroke's strength mixes the new detail into the old: how much of the style
    erosion: StreamPower | None = None  # the erosion stage run on the edited window after sampling (None: none)
    anchored: bool = False  # a coarse map sampled anew keeps its level and leans into the known ground (no scarp)
    # the new ground fades into the old along the stroke's whole falloff (its weight), not over the rim's last
    # 1/feather: a kind whose change is new texture differs from the old ground as much at its rim as at its
    # centre, and a ramp a quarter of the radius wide between the two drew the stroke's outline
    faded: bool = False
    # the stroke's weight from which its ground is fully worn by the erosion stage; less of it at the rim, where
    # wearing everything above 1/feather (a sharp switch from worn to unworn ground) drew the stroke's outline
    worn_from: float = 0.5
    # the new ground's change (coarse and detail) scaled to the style's typical relief over the world's, at most 1:
    # the models sample in the world's units, so dunes painted on the README's 800 m alpine world stood -60..+137 m
    # (a blob 8x as rough as the land around); the corpus's dunes have 20-120 m of relief
    own_relief: bool = False


COARSE_REACH = 4.0  # base cells: a re-sampled coarse map leans into the known one over this far (no step)
EROSION_SMOOTH_CELLS = 6.0  # model cells: the erosion stage's change smoother than this is the window sinking
STREAM_CELLS = 3.0  # model cells: a valley's stream is cut into its target this far either side of its path
# model cells: a valley's stream eased onto its falling line this far either side at the models' cells (3 left
# a narrow valley a raised floor between two side channels that the stage cut: 1.6x as rough as around)
DRAIN_CELLS = 4.0
# 1/m: a valley's stream breached through a dam in a gap curved at most this much across (the land's roughness, std
# of the Laplacian, is about 0.3 m a cell² at 7.8 m cells: 0.005/m)
BREACH_CURVATURE = 0.005
# m: the erosion stage's dams on a valley's stream up to this high are breached, higher ones eased away as before the
# stage: where a valley crosses a spur the stage's slope diffusion fills its fresh floor (39 m on the README's
# valley), and a gap through that drew a slot (roughness 1.8x the land around)
BREACH_MAX_M = 10.0
MIN_FALL = 0.005  # a carved valley's floor falls at least this much per metre along it (0.5 %)
# the kinds whose target is drained before sampling (``drain_target``): a lowered patch or a valley carved into a
# hillside held a closed basin as wide as the stroke (priority-flood fill > 0.5 m on 18 % and 29 % of the cells
# within its radius on the natural-edit test's world, 0.2 % around), a stamped-on bowl; natural ground drains.
# Not raise, ridge or flatten: their basins (5-7 %) are mostly land dammed beside them, which draining their own
# target did not change (raise 2,041 -> 2,055 cells, ridge 1,477 -> 1,484; flatten 963 -> 1,315)
DRAINED_KINDS = ("lower", "valley")
# raise and ridge keep the land's drainage lines (``kept_drainage``): the ground draining this many m² (from none
# of the raise kept to all of it) and blurred over a model cell. Across a valley a raise dammed it beside the
# stroke (closed basins on 7.2 % of the cells within the radius and 3.5 % of the ring around, 0.24 % before)
KEEP_AREA_M2 = (1.8e3, 1.8e4)
# a basin filled in a target gets a floor falling this much per metre toward its outlet: at MIN_FALL's 0.5 % the
# erosion stage barely wore it and a lowered patch came out smoother than around (roughness 0.236 vs 0.307)
FILL_FALL = 0.02
LIGHT = EROSION_STAGES["light"]  # the new ground worn as generation wears the land: gullies, spurs, side valleys
# raised ground is steeper than the land it stands on (a third as much of it gentle), so the stage cuts it harder:
# worn at LIGHT's own slope diffusion a raise was 1.38x as rough as the land around it (std of the Laplacian;
# 1.33x a ridge), with half as much again 1.0-1.2x
RAISED_WEAR = replace(LIGHT, diffusion=1.5 * LIGHT.diffusion)
# and lowered ground sinks into gentler land, so the stage's diffusion smooths it more: worn at LIGHT's own a lowered
# patch was 0.74x as rough as the land around it, 0.89x so
SUNK_WEAR = replace(LIGHT, diffusion=0.75 * LIGHT.diffusion)
RECIPES: dict[str, Recipe] = {
    # new detail on the moved ground; a raise is worn by its weight over the whole radius, as a ridge (below): its
    # outline 0.93 -> 0.79 (mean |Laplacian| at 0.7-0.8 of the radius, 0.35 around)
    "raise": Recipe(0.5, erosion=RAISED_WEAR, worn_from=1.0), "lower": Recipe(0.5, erosion=SUNK_WEAR),
    # a ridge is worn by its weight over the whole radius: fully from half its weight, the stage's change faded out
    # between half and four fifths of the radius and drew an outline around it there (mean |Laplacian| 0.63 at 0.7-0.8
    # of the radius on the README's ridge, 0.35 around; 0.51 so)
    "ridge": Recipe(0.4, erosion=RAISED_WEAR, worn_from=1.0),
    # a valley's stream is drained before and after the stage: its side only partly worn gave a narrow valley a
    # floor 1.5x as rough as around (two channel networks blended); worn fully from half its weight, not a quarter:
    # the stage's change cut off at 0.67 of the radius drew a rim cliff (steepest 1 % of the edge band 64 -> 50
    # degrees on the README's valley, 27 in the land around)
    "valley": Recipe(0.4, erosion=LIGHT),
    # little noise: the point is less relief; a flattened stretch is worn and drained as the land around it. The
    # worn land is smooth: smooth's model detail from 0.08 made it rougher than before (tiny test models: 1.8x;
    # from 0.03 1.1x on the tiny models of corpus v3)
    "flatten": Recipe(0.15, erosion=LIGHT), "smooth": Recipe(0.02),
    # the erosion stage alone, its steps by strength, faded out over the whole falloff
    "erode": Recipe(0.0, erosion=EROSION_STAGES["mature"], worn_from=1.0),
    # fades in by the weight: blended over the rim's last quarter, the ground at 0.6-0.8 of the radius was 2.2-2.4x
    # as rough as the land around (mean |Laplacian|; the outline in the README's hillshade), so 1.1-1.2x
    "regenerate": Recipe(10.0, coarse_sigma=80.0, erosion=LIGHT, anchored=True, faded=True),
    # large forms kept, the style's own texture drawn at its own relief
    "style_paint": Recipe(10.0, coarse_sigma=1.0, guided=True, mixed=True, erosion=LIGHT, own_relief=True),
}


@dataclass(frozen=True)
class EditSettings:
    detail_steps: int = 3
    coarse_steps: int = 6
    margin: int = 8  # cells of untouched context around the stroke that the model sees
    feather: float = 4.0  # weight above 1/feather is fully re-sampled; below it blends into the known
    sampler: str = "dpmpp_2m"


# While the pen moves, each update is replaced by the next within a fraction of a second: one detail step and
# three coarse ones (128² windows at 512² over 4 km, in one run: 0.54-0.66x the time of two and four).
# benchmarks/results/brush_steps_cpu.txt: the shaping kinds end 2.8-3.9 % of their change off the converged edit
# (2.2-3.1 % committed); regenerate draws other ground, and style paint keeps a little less detail (0.85 of the
# converged paint's, committed 0.89). Two coarse steps would be one jump from the top noise level: a blurred guess.
# The stroke's final, committed job uses the full EditSettings.
LIVE_SETTINGS = EditSettings(detail_steps=1, coarse_steps=3)


@dataclass(frozen=True)
class Edit:
    window: tuple[int, int, int, int]  # row0, col0, row1, col1 of the changed window
    heights: np.ndarray  # (row1 - row0, col1 - col0) float32 metres: the window after the edit
    weight: np.ndarray  # the stroke's weight over the window (0 = untouched)


def _levels(model: TerrainModel) -> int:
    """How many times a U-Net halves its input: the sizes it accepts are multiples of this."""
    return 2 ** (len(model.denoiser.net.config.channel_mult) - 1)


def _pad(x: Tensor, factor: int) -> Tensor:
    """[B, C, h, w] -> padded (replicate) to multiples of factor at the bottom/right."""
    ph, pw = -x.shape[-2] % factor, -x.shape[-1] % factor
    return F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x


def _sample(denoiser: Callable[..., Tensor], start: Tensor, sigma: float, steps: int, cond: Conditioning,
            generator: torch.Generator, sampler: str, callback: Callable[[dict], None] | None) -> Tensor:
    """SDEdit: ``start`` noised to ``sigma``, then the few-step tail of a Karras schedule down to 0."""
    sigmas = karras_sigmas(steps, sigma_max=sigma, sigma_min=min(0.002, sigma / 2)).to(start.device)
    noise = torch.randn(start.shape, generator=generator).to(start.device)
    return get_sampler(sampler)(denoiser, start + sigma * noise, sigmas, cond=cond, callback=callback)


@dataclass(frozen=True)
class NetworkUnits:
    """Metres <-> the models' units: the whole terrain's min..max onto -1..1 (not the window's), so the
    super-resolution residual keeps the scale it was trained at. Works on arrays, tensors and floats."""

    lo: float  # the terrain's lowest height, metres
    to_net: float  # network units per metre

    def net(self, metres: Any) -> Any:
        return (metres - self.lo) * self.to_net - 1

    def metres(self, net: Any) -> Any:
        return (net + 1) / self.to_net + self.lo


def network_units(heights: np.ndarray) -> NetworkUnits:
    lo, hi = float(heights.min()), float(heights.max())
    return NetworkUnits(lo, 2.0 / max(hi - lo, 1e-6))


def edit_window(base: TerrainModel, superres: TerrainModel, heights: np.ndarray, window: tuple[int, int, int, int],
                weight: Tensor, t: Tensor, recipe: Recipe, style_weights: dict[str, float], sliders: dict[str, float],
                guidance: float, seed: int, cell_size: float, settings: EditSettings = EditSettings(),
                on_step: EditCallback | None = None, pinned: Tensor | None = None, strength: float = 1.0,
                drain: StreamDrain | None = None) -> Edit:
    """The masked guided edit of one window of ``heights`` (H, W float32 metres, ``cell_size`` m cells) toward
    the target ``t``, sampled at the models' own cells and resampled into the mesh (``scale.ModelGrid``).

    weight: [h, w] float64 in [0, 1], 0 = untouched (bit for bit); t: [h, w] the target in network units
    (see ``network_units``); pinned: optional [h, w] in [0, 1], how much of each cell ends on the target (1:
    exactly; a river's channel); strength: how much of the new detail a ``mixed`` recipe keeps (times the
    weight); drain: a valley's stream, drained at the models' cells before and after the erosion stage. Pure function
    of its inputs and seed.
    """
    r0, c0, r1, c1 = window
    original = heights[r0:r1, c0:c1]
    units = network_units(heights)
    x = units.net(torch.from_numpy(original.astype(np.float64)))
    model_cell = superres.meta["cell_size_m"]
    grid = ModelGrid.of(x.shape, cell_size, model_cell)
    resampled = torch.clamp(weight * settings.feather, 0, 1)  # 1: sampled anew whole
    blend = weight if recipe.faded else resampled  # how much of the new ground the mesh takes
    weight_model = grid.to_model(weight)
    fixed = None if pinned is None else grid.to_model(pinned.double()).clamp(0, 1)

    def to_metres(net: Tensor) -> np.ndarray:
        out = units.metres(net.double().cpu()).numpy().astype(np.float32)
        return np.where(weight.numpy() > 0, out, original)

    def on_mesh(net_model: Tensor) -> Tensor:
        """The mesh window with the stroke's ground remade at the models' scale, faded out at its rim. None of the
        mesh's detail finer than the models' cells is kept under it: on generated ground that detail is the
        resampling's, and half of it kept doubled the texture of the worn ground and left pits in it. Toward its rim
        (weight under 1/feather, or along the whole falloff for a ``faded`` kind) it blends into its target (the
        moved ground with its texture kept), not into the ground as it was: that cut off the last quarter of a raise
        in a few cells and drew a shoulder along a valley's rim (Laplacian std 0.79 vs the land's 0.16 at 0.6-0.7 of
        its radius; 0.54 so)."""
        out = t + blend * (grid.to_mesh(net_model.double().cpu()) - t)
        return out if pinned is None else torch.where(pinned >= 1, t, torch.lerp(out, t, pinned))  # 1: exactly

    show = None if on_step is None else \
        lambda step, total, net: on_step(step, total, window, lambda: to_metres(on_mesh(net)))  # noqa: E731
    # the models sample in the world's units: a style's texture comes out as tall as the world's relief
    relief_scale = min(1.0, typical_relief_m(style_weights) * units.to_net / 2) if recipe.own_relief else 1.0
    result = diffuse(base, superres, grid.to_model(t), weight_model, fixed, recipe, style_weights, sliders,
                     guidance, seed, settings, show, strength, relief_scale)
    drainage = sum(w * STYLES[name].drainage for name, w in style_weights.items() if name in STYLES)
    stage = scaled(recipe.erosion, drainage)  # as generation: the style's share of the stage (none for dunes)
    if drain is not None:  # before the stage, which wears the ground around the stream as around any other
        result = drain.eased(result.double(), grid, weight_model)
    if stage is None:
        return Edit(window, to_metres(on_mesh(result)), weight.numpy().astype(np.float32))
    # fully worn in the stroke's core (as generation wears all of its map), faded out toward the rim
    share = torch.clamp(weight_model / recipe.worn_from, 0, 1)
    share = share if fixed is None else share * (1 - fixed)
    result = worn(result.double(), stage, share, model_cell, units.to_net)
    if drain is not None:  # and after it, which leaves the stream off its falling line where it fills it
        result = drain.settled(result.double(), grid, weight_model)
    # resampled into the mesh as generation resamples its maps; the stage drained the fully worn ground, and
    # what the cubic leaves there on gentle ground are millimetre pits, filled as DEM pipelines do. Toward the
    # rim the stage wears less: where a raise's foot dams a valley the land drained through, the pit it makes
    # is filled too (those the land had there are its own)
    heights = to_metres(on_mesh(result))
    dammed = (weight.numpy() > 0) & (original >= lowest_neighbour(original))
    return Edit(window, fill_pits(heights, (resampled.numpy() >= 1) | dammed), weight.numpy().astype(np.float32))


def lowest_neighbour(heights: np.ndarray) -> np.ndarray:
    """Per cell, the lowest of its 8 neighbours (the grid's edge repeated): a cell under it is a pit."""
    ring = np.ones((3, 3), dtype=bool)
    ring[1, 1] = False
    return ndi.minimum_filter(heights, footprint=ring, mode="nearest")


def fill_pits(heights: np.ndarray, where: np.ndarray) -> np.ndarray:
    """``heights`` with each cell of ``where`` lower than all 8 neighbours raised to its lowest neighbour.

    A stream burnt into the mesh evens a band beside its channel into near-flat ground, where its leftover
    texture makes single-cell pits (2-3x as many as around), which this fills as DEM pipelines do; the caller
    leaves out the pits the models drew there, the land's own texture (filling every pit the burn touched left
    a valley floor pit-free, a tell beside the land around, as filling an edit's pits everywhere did).
    """
    lowest = lowest_neighbour(heights)
    return np.where(where & (heights < lowest), lowest, heights).astype(heights.dtype)


def worn(x: Tensor, stage: StreamPower, share: Tensor, cell: float, to_net: float) -> Tensor:
    """A window [h, w] (network units, ``cell`` m cells) after the erosion stage, by ``share`` [h, w] in [0, 1].

    The window's held rim is an artificial base level: the stage's channels cut down to it and the whole window
    sinks (up to 90 m in a light stage on generated ground, 195 m in a mature one). That sinking, the smooth part
    (Gaussian, ``EROSION_SMOOTH_CELLS``) of one run's change, is added to the window first, so that the stage's
    second run ends near the window's level, and the smooth part of what it still moved is taken off. The
    stage's gullies and channels are its last word, so the ground drains as generation's does: taking the whole
    sinking off after one run instead made its channels climb where they had cut deepest (pits along them)."""
    def run(z: Tensor) -> Tensor:
        return torch.from_numpy(erode(z.numpy() / to_net, cell, stage)) * to_net

    sinking = gaussian_blur(run(x) - x, EROSION_SMOOTH_CELLS)
    out = run(x - sinking)
    return torch.lerp(x, out - gaussian_blur(out - x, EROSION_SMOOTH_CELLS), share)


def level_kept(sampled: Tensor, before: Tensor, weight: Tensor) -> Tensor:
    """The re-sampled coarse map shifted (by the stroke's weight, so not at its rim) to the mean level it had under
    the stroke (weighted by the stroke): the models place new land at their own idea of its level, which sank a
    regenerated patch into a bowl with a scarp around it. The shift is scaled by the weight, so it is the one whose
    weighted mean cancels the change (divided by the weight's sum of squares: by its sum, half the change stayed
    and a regenerated patch stood 8-13 m above the land around it)."""
    shift = ((before - sampled) * weight).sum() / (weight * weight).sum().clamp_min(1e-9)
    return sampled + shift * weight


def diffuse(base: TerrainModel, superres: TerrainModel, t: Tensor, weight: Tensor, fixed: Tensor | None,
            recipe: Recipe, style_weights: dict[str, float], sliders: dict[str, float], guidance: float, seed: int,
            settings: EditSettings, show: Callable[[int, int, Tensor], None] | None, strength: float,
            relief_scale: float = 1.0) -> Tensor:
    """The few-step SDEdit of ``recipe`` on a window at the models' cells: [h, w] network units in and out.

    t: the window's target (outside the stroke, the window itself), weight: the stroke's, fixed: how much of each
    cell is kept on the target (1: exactly; or None); relief_scale: how much of the re-sampled coarse map's change
    and of the new detail an ``own_relief`` recipe keeps (its style's relief over the world's);
    ``show(step, total, estimate)`` streams each step's estimate.
    """
    factor = superres.meta["factor"]
    device = superres.device
    total = settings.detail_steps * (recipe.detail_sigma > 0) + settings.coarse_steps * (recipe.coarse_sigma > 0)
    if not total:
        return t.float()
    rng = torch.Generator().manual_seed(seed)
    h, w = t.shape
    # each network runs on its own grid padded to the sizes it accepts, not both on the lcm of the two: a 128²
    # mesh window is 34² model cells, which that padded to 64² (3.5x the super-resolution's work) for a coarse
    # map of 9² that the base model takes padded to 16² just as well
    pad = lambda a: _pad(a.float()[None, None].to(device), math.lcm(factor, _levels(superres)))  # noqa: E731
    pad_coarse = lambda a: _pad(a, _levels(base))  # noqa: E731
    tp, known = pad(t), 1 - pad(torch.clamp(weight * settings.feather, 0, 1))
    fixed = None if fixed is None else pad(fixed)
    cond = base.conditioning(style_weights, sliders)
    cond_fine = superres.conditioning(style_weights, sliders)
    coarse = downsample(tp, factor)
    hc, wc = coarse.shape[-2:]
    done = 0

    def report(info: dict, up: Tensor | None) -> None:
        nonlocal done
        done += 1
        if show is None:
            return
        if up is None:  # a coarse step: show its estimate upsampled
            up, denoised = upsample(info["denoised"][..., :hc, :wc], factor), torch.zeros_like(tp)
        else:
            denoised = info["denoised"]
        show(done, total, (up + superres.meta["residual_scale"] * denoised)[0, 0, :h, :w])

    with torch.no_grad():
        if recipe.coarse_sigma > 0:
            known_c = pad_coarse(1 - downsample(1 - known, factor))  # 1 only where every fine cell is known
            reach = COARSE_REACH if recipe.anchored else 0.0
            model = Inpainting(ClassifierFreeGuidance(base.denoiser, guidance), pad_coarse(coarse), known_c,
                               reach=reach)
            sampled = model.finalize(_sample(model, pad_coarse(coarse), recipe.coarse_sigma, settings.coarse_steps,
                                             cond, rng, settings.sampler, lambda info: report(info, None)))
            sampled = sampled[..., :hc, :wc]
            coarse = level_kept(sampled, coarse, downsample(pad(weight), factor)) if recipe.anchored else \
                torch.lerp(coarse, sampled, relief_scale)
        up = upsample(coarse, factor)
        fine = tp
        if recipe.detail_sigma > 0:
            scale = superres.meta["residual_scale"]
            denoiser = ClassifierFreeGuidance(superres.denoiser, guidance) if recipe.guided else superres.denoiser
            keep = known if fixed is None else torch.maximum(known, fixed)
            model = Inpainting(denoiser, (tp - up) / scale, keep)
            residual = model.finalize(_sample(model, (tp - up) / scale, recipe.detail_sigma, settings.detail_steps,
                                              cond_fine.replace(spatial=up), rng, settings.sampler,
                                              lambda info: report(info, up)))
            if recipe.mixed:
                # linear in the residual, so the known part stays exact, and by the stroke's weight as well as its
                # strength, so the new style thins out along the brush's falloff as every other kind's change does:
                # at the strength alone a painted dune patch kept its full texture out to three quarters of the
                # radius and stopped there (roughness 6.1 -> 0.9 from one quarter of the radius to the next)
                residual = torch.lerp((tp - up) / scale, relief_scale * residual, strength * pad(weight))
            fine = up + scale * residual
            if fixed is not None:
                # a fully fixed cell exactly tp, not up + scale * (tp - up) / scale
                fine = torch.where(fixed >= 1, tp, torch.lerp(fine, tp, fixed))
    return fine[0, 0, :h, :w].cpu()


def _flatten_level(stroke: Stroke, heights: np.ndarray) -> float:
    """Flatten's height in metres: the one picked, else the height under the stroke's first point."""
    if stroke.height_m is not None:
        return stroke.height_m
    first = np.clip(np.rint(stroke.points[0, :2]).astype(int), 0, np.array(heights.shape) - 1)
    return float(heights[first[0], first[1]])


def apply_stroke(base: TerrainModel, superres: TerrainModel, heights: np.ndarray, stroke: Stroke | RegionStroke,
                 style_weights: dict[str, float], sliders: dict[str, float], guidance: float, cell_size: float,
                 seed: int, settings: EditSettings = EditSettings(), on_step: EditCallback | None = None) -> Edit:
    """The edited window of ``heights`` (H, W float32 metres); pure function of its inputs and seed."""
    window = stroke.window(heights.shape, mesh_margin(settings.margin, cell_size, superres.meta["cell_size_m"]),
                           superres.meta["factor"])
    r0, c0, r1, c1 = window
    units = network_units(heights)
    x = units.net(torch.from_numpy(heights[r0:r1, c0:c1].astype(np.float64)))
    fp = footprint(stroke, window)
    level = units.net(_flatten_level(stroke, heights)) if stroke.kind == "flatten" else 0.0
    if stroke.kind == "valley" and not np.array_equal(bend := rounded(stroke.points, stroke.radius), stroke.points):
        # it bends through the path's corners: its shape and stream follow the rounded path, its weight the
        # artist's footprint (nothing beyond that moves)
        stroke = replace(stroke, points=bend)
        fp = replace(footprint(stroke, window), weight=fp.weight)
    t = target(stroke, x, fp, level)
    model_cells = max(1.0, superres.meta["cell_size_m"] / cell_size)  # mesh cells per model cell
    ground = heights[r0:r1, c0:c1]
    cap = stream_cap(stroke, units.metres(t).numpy(), ground, window) if stroke.kind == "valley" else None
    if cap is not None:  # the models draw the valley around a stream that drains it
        t = units.net(torch.from_numpy(burn_stream(stroke, units.metres(t).numpy(), window, fp.weight.numpy(),
                                                   MIN_FALL * cell_size, STREAM_CELLS * model_cells, cap)))
    if stroke.kind in ("raise", "ridge"):
        t = units.net(torch.from_numpy(kept_drainage(units.metres(t).numpy(), units.metres(x).numpy(), cell_size,
                                                     model_cells)))
    if stroke.kind in DRAINED_KINDS:
        drained_t = drain_target(units.metres(t).numpy(), fp.weight.numpy(), FILL_FALL * cell_size)
        t = units.net(torch.from_numpy(drained_t))
        if cap is not None:  # its basins are filled to their outlets: the stream may rise to them (else it ends in one)
            cap = stream_cap(stroke, drained_t, ground, window)
    recipe = RECIPES[stroke.kind]
    if stroke.kind == "erode":  # strength 1: the mature stage's steps
        steps = max(1, round(stroke.strength * recipe.erosion.steps))
        recipe = replace(recipe, erosion=replace(recipe.erosion, steps=steps))
    drain = None if cap is None else StreamDrain(stroke, window, units, superres.meta["cell_size_m"], cap)
    edit = edit_window(base, superres, heights, window, fp.weight, t, recipe, style_weights, sliders,
                       guidance, seed, cell_size, settings, on_step, strength=stroke.strength, drain=drain)
    if cap is None:
        return edit
    # the stream kept draining in the mesh: breached where the resampling dammed it
    breached, _ = stream_breach(stroke, edit.heights, window, edit.weight, MIN_FALL * cell_size,
                                BREACH_CURVATURE * cell_size**2)
    moved = ndi.binary_dilation(breached != edit.heights) & (edit.weight > 0)
    made = moved & (edit.heights >= lowest_neighbour(edit.heights))
    return replace(edit, heights=fill_pits(breached, made))  # the pits the breach made, not those the models drew


def drain_target(t: np.ndarray, weight: np.ndarray, fall: float) -> np.ndarray:
    """The target ``t`` (metres, the window) with the closed basins it holds filled by the stroke's ``weight``
    (fully where it is 1), each to a floor falling ``fall`` m a cell toward its outlet on the window's rim.

    As sediment fills an overdeepened valley to its sill, the basin becomes a floor that drains; the models then
    draw their detail on it and the erosion stage wears it as the land around. Filled at full strength out to the
    rim (weight > 0), a basin the stroke's rim held in left a step there (ground around 3x as rough). Breaching
    the rim instead (cutting outlets along the cheapest way out) made slots and pyramid-faced gorges."""
    filled = fill_depressions(torch.from_numpy(t.astype(np.float64)), fall).numpy()
    return t + np.clip(weight, 0, 1) * (np.maximum(t, filled) - t)


def kept_drainage(t: np.ndarray, x: np.ndarray, cell: float, blur: float) -> np.ndarray:
    """A raising target ``t`` (metres, the window ``x``'s) lowered back toward ``x`` along the land's drainage
    lines: none of the rise kept where ``x`` drains KEEP_AREA_M2[1] or more (D8 over ``x`` filled to drain to
    the window's rim), all of it under KEEP_AREA_M2[0], log-linear between, blurred ``blur`` cells (doubled and
    capped, so a channel keeps its whole floor). The land's valleys run on through the raised ground, as
    gullies between spurs, instead of being dammed into lakes beside it."""
    filled = fill_depressions(torch.from_numpy(x.astype(np.float64)), 1e-4)
    receiver, _, _ = d8_receivers(filled[None], cell)
    area = accumulate(receiver, torch.full_like(filled, cell * cell)[None])[0].numpy()
    low, high = KEEP_AREA_M2
    channel = np.clip(np.log(np.maximum(area, low) / low) / math.log(high / low), 0, 1)
    keep = np.clip(2 * gaussian_blur(torch.from_numpy(channel), blur).numpy(), 0, 1)
    return t - keep * np.maximum(t - x, 0)


@dataclass(frozen=True)
class StreamDrain:
    """A valley's stream drained at the models' cells (window [hm, wm] network units, its ``ModelGrid``, the stroke's
    weight there). At that scale the channel survives the resampling into the mesh, so the mesh's own breach
    afterwards moves the floor little."""

    stroke: Stroke
    window: tuple[int, int, int, int]
    units: NetworkUnits
    model_cell: float
    cap: np.ndarray  # ``brushes.stream_cap``

    def _at_model_cells(self, grid: ModelGrid) -> Stroke:
        scale = np.array([(m - 1) / max(n - 1, 1) for m, n in zip(grid.model, grid.mesh)])
        return replace(self.stroke, points=np.c_[(self.stroke.points[:, :2] - self.window[:2]) * scale,
                                                 self.stroke.points[:, 2]])

    def eased(self, net: Tensor, grid: ModelGrid, weight: Tensor) -> Tensor:
        """The path's heights fitted to the nearest line falling from one divide under ``cap``
        (``brushes.burn_stream``), ``DRAIN_CELLS`` either side eased onto it: eased over one model cell, it left a
        beaded notch along a narrow valley (2.6x as rough as around)."""
        burnt = burn_stream(self._at_model_cells(grid), self.units.metres(net.numpy()), (0, 0, *grid.model),
                            weight.numpy(), MIN_FALL * self.model_cell, DRAIN_CELLS, self.cap)
        return self.units.net(torch.from_numpy(burnt))

    def settled(self, net: Tensor, grid: ModelGrid, weight: Tensor) -> Tensor:
        """After the erosion stage: breached (``brushes.stream_breach``) where it dammed the stream up to
        BREACH_MAX_M, so the valley keeps the floor the stage wore; eased again where it dammed it higher. Eased
        every time, a valley falling all the way down a slope was a canal, a flat floor band between uniform walls."""
        breached, deepest = stream_breach(self._at_model_cells(grid), self.units.metres(net.numpy()),
                                          (0, 0, *grid.model), weight.numpy(), MIN_FALL * self.model_cell,
                                          BREACH_CURVATURE * self.model_cell**2)
        if deepest > BREACH_MAX_M:
            return self.eased(net, grid, weight)
        return self.units.net(torch.from_numpy(breached))


def seam_ratio(after: np.ndarray, weight: np.ndarray) -> float:
    """Mean height step between neighbours across the stroke's rim over the mean step elsewhere.

    ~1 means the rim looks like any other place; a seam (a step or crease at the mask edge) makes it
    large.
    """
    inside = weight > 0
    steps, crossing = [], []
    for axis in (0, 1):
        steps.append(np.abs(np.diff(after.astype(np.float64), axis=axis)).ravel())
        crossing.append(np.diff(inside.astype(np.int8), axis=axis).ravel() != 0)
    step, cross = np.concatenate(steps), np.concatenate(crossing)
    if not cross.any() or cross.all():
        return 1.0
    return float(step[cross].mean() / max(step[~cross].mean(), 1e-12))
