"""The one entry point ``simulate``: a style's spec (``style_specs``) and a seed become terrain.

The shared pipeline turns a style's parameters into terrain:

1. fBm initial surface + a style-shaped uplift field (ranges, plateau, islands, cones);
2. ``steps`` x (uplift, stream-power incision with lake infill, hillslope diffusion), in uplift
   units; the result is then scaled vertically to the sampled relief (metres);
3. style extras at metric scale: glacial troughs, caldera, sea level, dunes;
4. talus (thermal) and hydraulic erosion, then masks and the splat map.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from backend.grids import downsample, slope_degrees
from backend.simulation import erosion as er
from backend.simulation.artist_masks import SPLAT_NAMES, depth_mask, flow_mask, splat_map
from backend.simulation.evolution import Evolution, evolve
from backend.simulation.flow import accumulate, d8_receivers, fill_depressions
from backend.simulation.spectral_noise import fbm
from backend.simulation.style_specs import STYLE_NAMES, STYLES, StyleSpec
from backend.terrain import Heightfield

SLIDER_NAMES: tuple[str, ...] = ("roughness", "erosion_strength", "elevation_range", "sea_level")
MASK_NAMES: tuple[str, ...] = ("flow", "wear", "deposition", "slope", "water", "sand")

THERMAL_ITERATIONS, HYDRAULIC_ITERATIONS = 15, 20  # the final talus and hydraulic erosion
WEAR_MASK_RELIEF, DEPOSITION_MASK_RELIEF = 0.02, 0.01  # mask depth scales, as fractions of the relief
SAND_MASK_M = 2.0  # sand this deep is mask value 1 - 1/e
SLOPE_MASK_DEG = 60.0  # slope mask value 1
DUNE_GRID = 2  # dunes run on a grid this many times coarser (dune-scale, fast)
DUNE_HOP = 2  # cells a sand slab hops downwind
INITIAL_RELIEF = 100.0  # the initial fBm surface's scale, uplift units (init_amplitude is a fraction of it)


def spec(style: str) -> StyleSpec:
    """The spec of ``style``; a clear error naming the known styles otherwise."""
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; expected one of {STYLE_NAMES}")
    return STYLES[style]


def sample_params(style: str, rng: np.random.Generator) -> dict[str, float]:
    """Draw one parameter set of ``style`` (flat dict of floats)."""
    return spec(style).sample(rng)


def elevation_slider(relief_m: float) -> float:
    """The elevation_range slider of a map whose heights span ``relief_m``: log relief from 10 m (0) to 5 km (1)."""
    return float(np.clip(math.log(max(relief_m, 10.0) / 10.0) / math.log(500.0), 0.0, 1.0))


def sliders(params: dict[str, float]) -> dict[str, float]:
    """The UI's four style-independent controls, each normalised to [0, 1].

    roughness: initial-noise amplitude and spectral slope (flatter spectrum = rougher);
    erosion_strength: log incision x steps (how far the river network got); elevation_range: log relief from 10 m to 5 km;
    sea_level: fraction of the relief under water.
    """
    rough = 0.5 * (params["init_amplitude"] / 0.3) + 0.5 * (2.6 - params["fbm_beta"]) / 1.0
    strength = (math.log10(params["k_cells"] * params["steps"]) - 1.0) / 1.5  # ~10 .. 300 -> 0 .. 1
    vals = {"roughness": rough, "erosion_strength": strength, "elevation_range": elevation_slider(params["relief_m"]),
            "sea_level": params["sea_level"]}
    return {k: float(np.clip(v, 0.0, 1.0)) for k, v in vals.items()}


def _uplift_range(p: dict[str, float], large: np.ndarray, yy: np.ndarray, xx: np.ndarray,
                  rng: np.random.Generator) -> np.ndarray:
    """A main range along a random axis, roughened by the large-scale noise."""
    a = rng.uniform(0, math.pi)
    d = (xx - 0.5) * math.cos(a) + (yy - 0.5) * math.sin(a)
    ridge = np.exp(-(d * p["ridge_anisotropy"] * 2.5) ** 2)
    return 0.4 + 0.6 * (0.6 * ridge + 0.4 * large)


def _uplift_plateau(p: dict[str, float], large: np.ndarray, yy: np.ndarray, xx: np.ndarray,
                    rng: np.random.Generator) -> np.ndarray:
    """A uniformly rising plateau."""
    return np.ones(large.shape)


def _uplift_islands(p: dict[str, float], large: np.ndarray, yy: np.ndarray, xx: np.ndarray,
                    rng: np.random.Generator) -> np.ndarray:
    """Islands where the large-scale noise is above the threshold, a slowly rising sea floor elsewhere."""
    islands = np.clip((large - p["island_threshold"] * 0.6) / 0.4, 0, 1)
    return 0.1 + 0.9 * islands


def _uplift_cones(p: dict[str, float], large: np.ndarray, yy: np.ndarray, xx: np.ndarray,
                  rng: np.random.Generator) -> np.ndarray:
    """``cones`` volcanic cones of random heights near the middle, on a little large-scale noise."""
    cone = np.zeros(large.shape)
    for _ in range(int(p["cones"])):
        cy, cx = rng.uniform(0.25, 0.75, size=2)
        r = np.hypot(yy - cy, xx - cx) / p["cone_radius"]
        cone = np.maximum(cone, np.exp(-r ** 1.5) * rng.uniform(0.6, 1.0))
    return 0.05 + 0.85 * cone + 0.1 * large


def _uplift_noise(p: dict[str, float], large: np.ndarray, yy: np.ndarray, xx: np.ndarray,
                  rng: np.random.Generator) -> np.ndarray:
    """The large-scale noise alone (hills, dunes)."""
    return 0.3 + 0.7 * large


UpliftFn = Callable[[dict[str, float], np.ndarray, np.ndarray, np.ndarray, np.random.Generator], np.ndarray]
UPLIFT_PATTERNS: dict[str, UpliftFn] = {"noise": _uplift_noise, "range": _uplift_range, "plateau": _uplift_plateau,
                                        "islands": _uplift_islands, "cones": _uplift_cones}


def _uplift_field(style: StyleSpec, p: dict[str, float], size: int, rng: np.random.Generator) -> np.ndarray:
    """(size, size) uplift-rate pattern in [0, 1]: where and how fast rock rises."""
    large = fbm(int(size * 1.5), rng, beta=3.0)[:size, :size]
    large = (large - large.min()) / max(np.ptp(large), 1e-9)
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    return UPLIFT_PATTERNS[style.uplift](p, large, yy, xx, rng)


def _base_level(style: StyleSpec, size: int, rng: np.random.Generator) -> np.ndarray:
    """(size, size) bool: the cells held at base level (0). Islands sit in an ocean (the whole ring); other
    maps drain through 2-5 short outlet segments, like a window cut from a larger landscape whose rivers
    leave at a few points, instead of a frame of cliffs around the map."""
    ring = np.zeros((size, size), dtype=bool)
    if style.ocean:
        ring[0, :] = ring[-1, :] = ring[:, 0] = ring[:, -1] = True
        return ring
    perimeter = [(0, c) for c in range(size)] + [(r, size - 1) for r in range(1, size)] + \
        [(size - 1, c) for c in range(size - 2, -1, -1)] + [(r, 0) for r in range(size - 2, 0, -1)]
    for _ in range(int(rng.integers(2, 6))):
        start = int(rng.integers(len(perimeter)))
        for i in range(max(2, size // 64)):
            ring[perimeter[(start + i) % len(perimeter)]] = True
    return ring


@dataclass
class _Ledger:
    """Material moved so far, in the current height units: where rock was worn away and where it was laid down."""

    wear: Tensor
    deposition: Tensor

    def track(self, z: Tensor, new: Tensor) -> Tensor:
        """Book the change from z to new; returns new."""
        self.wear = self.wear + (z - new).clamp(min=0)
        self.deposition = self.deposition + (new - z).clamp(min=0)
        return new


def simulate(style: str, seed: int, size: int = 256, cell_size: float = 30.0,
             device: str | torch.device = "cpu", params: dict[str, float] | None = None) -> Heightfield:
    """Simulate one (size, size) map of ``style``; deterministic in (style, seed, size, cell_size).

    Use :func:`simulate_with_params` to also get the params (and ``slider_*`` values) behind it.
    """
    hf, _ = simulate_with_params(style, seed, size, cell_size, device, params)
    return hf


def simulate_with_params(style: str, seed: int, size: int = 256, cell_size: float = 30.0,
                         device: str | torch.device = "cpu",
                         params: dict[str, float] | None = None) -> tuple[Heightfield, dict[str, float]]:
    """Like :func:`simulate`, also returning the params dict that produced the map."""
    chosen = spec(style)
    if size < 16:
        raise ValueError(f"size must be >= 16 cells, got {size}")
    if not cell_size > 0:
        raise ValueError(f"cell_size must be positive metres, got {cell_size}")
    rng = np.random.default_rng([seed, STYLE_NAMES.index(style)])
    p = dict(params) if params is not None else chosen.sample(rng)
    dev = torch.device(device)
    z, ledger, area = _fluvial_landscape(chosen, p, size, cell_size, rng, dev)
    z, sand = _style_extras(chosen, p, z, ledger, area, cell_size, rng)
    hf = _with_masks(p, z, ledger, sand, cell_size, style)
    return hf, {**p, **{f"slider_{k}": v for k, v in sliders(p).items()}}


def _fluvial_landscape(style: StyleSpec, p: dict[str, float], size: int, cell_size: float,
                       rng: np.random.Generator, dev: torch.device) -> tuple[Tensor, _Ledger, Tensor]:
    """Steps 1-2: the uplift-driven fluvial landscape (``evolution.evolve``), scaled to metres:
    (z [1, H, W], its ledger, drainage area in m²)."""
    steps = int(p["steps"])
    initial = fbm(int(size * 1.25), rng, beta=p["fbm_beta"])[:size, :size] * p["init_amplitude"] * INITIAL_RELIEF
    uplift = _uplift_field(style, p, size, rng)
    plateau = style.plateau * steps  # an old plateau surface: canyons cut back from the edges
    run = Evolution(steps=steps, incision=p["k_cells"], hillslope_m=p["hillslope_m"], area_exponent=p["m"])
    layers = (lambda z, lifted: _strata(p, z, lifted, max(plateau, 1.0))) if style.strata else None
    land = evolve(initial + plateau, uplift, _base_level(style, size, rng), cell_size, run, layers)
    lo = float(land.heights.min())
    scale = p["relief_m"] / max(float(land.heights.max()) - lo, 1e-9)

    def metres(x: np.ndarray) -> Tensor:
        return torch.from_numpy(np.ascontiguousarray(x * scale)).to(dev, torch.float32)[None]

    ledger = _Ledger(metres(land.wear), metres(land.deposition))
    area = torch.from_numpy(land.area).to(dev, torch.float32)[None]
    return metres(land.heights - lo), ledger, area


def _strata(p: dict[str, float], z: np.ndarray, lifted: np.ndarray, thickness: float) -> np.ndarray:
    """Erodibility of flat-lying strata that move up with the rock: hard caprock where the layer phase is
    low. ``thickness`` (uplift units) is the height the layer fractions are measured in."""
    phase = np.remainder((z - lifted) / (p["layer_cells"] * thickness), 1.0)
    return np.where(phase < p["hard_fraction"], p["hard_ratio"], 1.0)


def _crater(p: dict[str, float], z: Tensor) -> Tensor:
    """A crater in the highest cone: a bowl below the rim."""
    size, dev, dtype = z.shape[-1], z.device, z.dtype
    zz = z[0]
    r0, c0 = divmod(int(torch.argmax(zz)), size)
    yy, xx = torch.meshgrid(torch.arange(size, device=dev), torch.arange(size, device=dev), indexing="ij")
    r = torch.hypot((yy - r0).to(dtype), (xx - c0).to(dtype)) / (p["crater_frac"] * size)
    bowl = zz.max() * (1.0 - 0.25 * (1.0 - r.clamp(max=1.0) ** 2))
    return torch.minimum(z, bowl[None])


def _dunes(p: dict[str, float], z: Tensor, cell_size: float, rng: np.random.Generator) -> Tensor:
    """Sand thickness [1, H, W]: dunes are hundreds of metres long, so the slab model runs on a coarser grid
    (fast, and dune-scale) and the sand is upsampled smoothly."""
    size, k, f = z.shape[-1], int(p["wind_dir"]), DUNE_GRID
    bed = downsample(torch.rot90(z, k, dims=(-2, -1)), f)
    sand = torch.full_like(bed, p["sand_m"])
    g = torch.Generator(device=z.device).manual_seed(int(rng.integers(2 ** 31)))
    ap = er.AeolianParams(iterations=int(p["dune_iterations"]), slab=p["slab_m"], hop=DUNE_HOP, p_pick=p["dune_pick"])
    sand, _ = er.aeolian_transport(bed, sand, cell_size * f, ap, g)
    sand = torch.nn.functional.interpolate(sand[None], size=(size, size), mode="bicubic",
                                           align_corners=False)[0].clamp(min=0)
    return torch.rot90(sand, -k, dims=(-2, -1))


def _style_extras(style: StyleSpec, p: dict[str, float], z: Tensor, ledger: _Ledger, area: Tensor,
                  cell_size: float, rng: np.random.Generator) -> tuple[Tensor, Tensor | None]:
    """Step 3-4: the style's extras at metric scale, talus and hydraulic erosion: (z, sand or None)."""
    if style.glaciers:
        gp = er.GlacialParams(width_cells=p["trough_width_cells"], wall_height=p["trough_wall_m"], ela=p["ela"])
        z = ledger.track(z, er.glacial_carving(z, cell_size, gp, area)[0])
    if style.crater:
        z = ledger.track(z, _crater(p, z))
    thermal = er.ThermalParams(talus_deg=p["talus_deg"], iterations=THERMAL_ITERATIONS)
    z = ledger.track(z, er.thermal_erosion(z, cell_size, thermal)[0])
    hydraulic = er.HydraulicParams(iterations=HYDRAULIC_ITERATIONS, rain=p["hydraulic_rain"])
    z = ledger.track(z, er.hydraulic_erosion(z, cell_size, hydraulic)[0])
    sand = None
    if style.dunes:
        sand = _dunes(p, z, cell_size, rng)
        z = ledger.track(z, z + sand)
    return z, sand


def _with_masks(p: dict[str, float], z: Tensor, ledger: _Ledger, sand: Tensor | None, cell_size: float,
                style: str) -> Heightfield:
    """Heights relative to sea level, with the artist masks and the splat map."""
    sea = 0.0
    if p["sea_level"] > 0:
        sea = float(torch.quantile(z.flatten().double(), p["sea_level"]))
    z = z - sea
    heights = z[0].double().cpu().numpy().astype(np.float32)
    filled = fill_depressions(z[0].double())
    receiver, _, _ = d8_receivers(filled[None], cell_size)
    area_np = accumulate(receiver, torch.full_like(filled[None], cell_size ** 2))[0].cpu().numpy()
    flow = flow_mask(area_np, cell_size)
    wear_m = depth_mask(ledger.wear[0].double().cpu().numpy(), WEAR_MASK_RELIEF * p["relief_m"])
    dep_m = depth_mask(ledger.deposition[0].double().cpu().numpy(), DEPOSITION_MASK_RELIEF * p["relief_m"])
    lake = (filled[0] if filled.dim() == 3 else filled).cpu().numpy() - heights
    water = ((heights < 0) | (lake > 0.5)).astype(np.float32)
    sand_np = np.zeros_like(heights) if sand is None else sand[0].double().cpu().numpy()
    snow = None
    if "snow_line" in p:
        snow = float(heights.min() + p["snow_line"] * np.ptp(heights))
    masks = {
        "flow": flow, "wear": wear_m, "deposition": dep_m,
        "slope": np.clip(slope_degrees(heights, cell_size) / SLOPE_MASK_DEG, 0, 1).astype(np.float32),
        "water": water, "sand": depth_mask(sand_np, SAND_MASK_M),
    }
    splat = splat_map(heights, cell_size, flow, dep_m, sand=sand_np, snow_line=snow)
    return Heightfield(heights, cell_size, masks, splat, SPLAT_NAMES, style)
