"""Terrain families as parameter distributions, and the one entry point ``simulate``.

A style is a sampler ``rng -> params`` (a flat dict of floats, kept for conditioning). The
shared pipeline turns params into terrain:

1. fBm initial surface + a style-shaped uplift field (ranges, plateau, islands, cones);
2. ``steps`` x (uplift, stream-power incision with lake infill, hillslope diffusion), in uplift
   units; the result is then scaled vertically to the sampled relief (metres);
3. style extras at metric scale: glacial troughs, caldera, sea level, dunes;
4. talus (thermal) and hydraulic erosion, then masks and the splat map.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from backend.simulation import erosion as er
from backend.simulation.flow import accumulate, d8_receivers, fill_depressions
from backend.simulation.artist_masks import SPLAT_NAMES, depth_mask, flow_mask, slope_degrees, splat_map
from backend.simulation.spectral_noise import fbm
from backend.terrain import Heightfield

STYLE_NAMES: tuple[str, ...] = (
    "alpine", "rolling_hills", "desert_dunes", "canyon_mesa", "archipelago", "volcanic", "glacial_valleys",
)
SLIDER_NAMES: tuple[str, ...] = ("roughness", "erosion_strength", "elevation_range", "sea_level")
MASK_NAMES: tuple[str, ...] = ("flow", "wear", "deposition", "slope", "water", "sand")


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _lu(rng: np.random.Generator, lo: float, hi: float) -> float:
    """Log-uniform sample, for scale parameters."""
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _common(rng: np.random.Generator, relief: tuple[float, float], k: tuple[float, float],
            kappa: tuple[float, float], steps: tuple[int, int], talus: tuple[float, float],
            rain: tuple[float, float], beta: tuple[float, float] = (1.8, 2.4),
            init: tuple[float, float] = (0.05, 0.2)) -> dict[str, float]:
    return {
        "relief_m": _lu(rng, *relief),
        "fbm_beta": _u(rng, *beta),
        "init_amplitude": _u(rng, *init),  # initial fBm relief as a fraction of uplift relief
        # Stream-power erodibility in cell units: high enough that knickpoints from the few outlets
        # sweep the whole map within `steps` (lower values leave un-incised uplifted plateaus).
        "k_cells": _lu(rng, *k),
        "m": _u(rng, 0.4, 0.55),
        "kappa_cells": _lu(rng, *kappa),  # hillslope diffusivity per step, cell units
        "steps": float(rng.integers(steps[0], steps[1] + 1)),
        "talus_deg": _u(rng, *talus),
        "hydraulic_rain": _lu(rng, *rain),
        "sea_level": 0.0,  # fraction of the relief below sea (0 = no sea)
    }


def _alpine(rng: np.random.Generator) -> dict[str, float]:
    p = _common(rng, (1500, 3500), (1.2, 3.2), (0.01, 0.03), (50, 70), (34, 40), (0.1, 0.5))
    p.update(snow_line=_u(rng, 0.55, 0.8), ridge_anisotropy=_u(rng, 1.0, 2.5))
    return p


def _rolling_hills(rng: np.random.Generator) -> dict[str, float]:
    p = _common(rng, (80, 300), (3.2, 8.0), (0.05, 0.15), (40, 60), (30, 36), (0.05, 0.2),
                init=(0.1, 0.3))
    return p


def _desert_dunes(rng: np.random.Generator) -> dict[str, float]:
    p = _common(rng, (20, 120), (0.2, 0.8), (0.02, 0.08), (20, 30), (30, 34), (0.01, 0.05))
    p.update(sand_m=_u(rng, 15.0, 25.0), dune_iterations=float(rng.integers(250, 400)),
             wind_dir=float(rng.integers(0, 4)), slab_m=_u(rng, 2.0, 4.0), dune_pick=_u(rng, 0.4, 0.8))
    return p


def _canyon_mesa(rng: np.random.Generator) -> dict[str, float]:
    p = _common(rng, (300, 1200), (1.6, 4.0), (0.0005, 0.003), (30, 45), (55, 70), (0.1, 0.5),
                init=(0.01, 0.05))
    p.update(layer_cells=_u(rng, 0.08, 0.2), hard_fraction=_u(rng, 0.3, 0.6), hard_ratio=_u(rng, 0.05, 0.2))
    return p


def _archipelago(rng: np.random.Generator) -> dict[str, float]:
    p = _common(rng, (400, 1500), (1.2, 3.2), (0.01, 0.03), (40, 60), (32, 38), (0.1, 0.5))
    p.update(sea_level=_u(rng, 0.45, 0.7), island_threshold=_u(rng, 0.4, 0.6))
    return p


def _volcanic(rng: np.random.Generator) -> dict[str, float]:
    p = _common(rng, (800, 3000), (0.8, 2.4), (0.01, 0.03), (35, 50), (32, 36), (0.1, 0.5))
    p.update(cones=float(rng.integers(1, 4)), cone_radius=_u(rng, 0.15, 0.35), crater_frac=_u(rng, 0.05, 0.12),
             sea_level=_u(rng, 0.0, 0.15))
    return p


def _glacial_valleys(rng: np.random.Generator) -> dict[str, float]:
    p = _common(rng, (1200, 3000), (1.2, 3.2), (0.01, 0.03), (45, 60), (36, 42), (0.1, 0.5))
    p.update(trough_width_cells=_u(rng, 4.0, 9.0), trough_wall_m=_u(rng, 150.0, 400.0),
             ela=_u(rng, 0.2, 0.45), snow_line=_u(rng, 0.6, 0.85), ridge_anisotropy=_u(rng, 1.0, 2.0))
    return p


SAMPLERS: dict[str, Callable[[np.random.Generator], dict[str, float]]] = {
    "alpine": _alpine, "rolling_hills": _rolling_hills, "desert_dunes": _desert_dunes,
    "canyon_mesa": _canyon_mesa, "archipelago": _archipelago, "volcanic": _volcanic,
    "glacial_valleys": _glacial_valleys,
}


def sample_params(style: str, rng: np.random.Generator) -> dict[str, float]:
    """Draw one parameter set of ``style`` (flat dict of floats)."""
    if style not in SAMPLERS:
        raise ValueError(f"unknown style {style!r}; expected one of {STYLE_NAMES}")
    return SAMPLERS[style](rng)


def elevation_slider(relief_m: float) -> float:
    """The elevation_range slider of a map whose heights span ``relief_m``: log relief from 10 m (0) to 5 km (1)."""
    return float(np.clip(math.log(max(relief_m, 10.0) / 10.0) / math.log(500.0), 0.0, 1.0))


def sliders(params: dict[str, float]) -> dict[str, float]:
    """The UI's four style-independent controls, each normalised to [0, 1].

    roughness: initial-noise amplitude and spectral slope (flatter spectrum = rougher);
    erosion_strength: log erodibility x steps; elevation_range: log relief from 10 m to 5 km;
    sea_level: fraction of the relief under water.
    """
    rough = 0.5 * (params["init_amplitude"] / 0.3) + 0.5 * (2.6 - params["fbm_beta"]) / 1.0
    strength = (math.log10(params["k_cells"] * params["steps"]) - 0.5) / 2.0  # ~3 .. 300 -> 0 .. 1
    vals = {"roughness": rough, "erosion_strength": strength, "elevation_range": elevation_slider(params["relief_m"]),
            "sea_level": params["sea_level"]}
    return {k: float(np.clip(v, 0.0, 1.0)) for k, v in vals.items()}


def _uplift_field(style: str, p: dict[str, float], size: int, rng: np.random.Generator) -> np.ndarray:
    """(size, size) uplift-rate pattern in [0, 1]: where and how fast rock rises."""
    large = fbm(int(size * 1.5), rng, beta=3.0)[:size, :size]
    large = (large - large.min()) / max(np.ptp(large), 1e-9)
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    if style in ("alpine", "glacial_valleys"):
        # A main range along a random axis, roughened by the large-scale noise.
        a = rng.uniform(0, math.pi)
        d = (xx - 0.5) * math.cos(a) + (yy - 0.5) * math.sin(a)
        ridge = np.exp(-(d * p["ridge_anisotropy"] * 2.5) ** 2)
        return 0.4 + 0.6 * (0.6 * ridge + 0.4 * large)
    if style == "canyon_mesa":
        return np.ones((size, size))  # a uniformly rising plateau
    if style == "archipelago":
        islands = np.clip((large - p["island_threshold"] * 0.6) / 0.4, 0, 1)
        return 0.1 + 0.9 * islands
    if style == "volcanic":
        cone = np.zeros((size, size))
        for _ in range(int(p["cones"])):
            cy, cx = rng.uniform(0.25, 0.75, size=2)
            r = np.hypot(yy - cy, xx - cx) / p["cone_radius"]
            cone = np.maximum(cone, np.exp(-r ** 1.5) * rng.uniform(0.6, 1.0))
        return 0.05 + 0.85 * cone + 0.1 * large
    return 0.3 + 0.7 * large  # hills, dunes


def _outlet_mask(style: str, size: int, rng: np.random.Generator, device: torch.device) -> torch.Tensor:
    """[H, W] bool: boundary cells held at base level (0). Islands sit in an ocean (whole ring);
    other maps drain through 2-5 short outlet segments, like a window cut from a larger landscape
    whose rivers leave at a few points, instead of a frame of cliffs around the map. Flow routing
    treats only these cells as base level, so the other edges pass water inwards and basins
    integrate into a few river networks (not dozens of edge gullies)."""
    ring = torch.zeros(size, size, dtype=torch.bool, device=device)
    if style == "archipelago":
        ring[0, :] = ring[-1, :] = ring[:, 0] = ring[:, -1] = True
        return ring
    perimeter = [(0, c) for c in range(size)] + [(r, size - 1) for r in range(1, size)] + \
        [(size - 1, c) for c in range(size - 2, -1, -1)] + [(r, 0) for r in range(size - 2, 0, -1)]
    for _ in range(int(rng.integers(2, 6))):
        start = int(rng.integers(len(perimeter)))
        for i in range(max(2, size // 64)):
            ring[perimeter[(start + i) % len(perimeter)]] = True
    return ring


def _closed_boundary(z: torch.Tensor, outlets: torch.Tensor) -> torch.Tensor:
    """Non-outlet boundary cells copy their inner neighbour (+1 % of the relief so water never
    leaves there): a no-flux edge. Outlets stay where the processes hold them (base level)."""
    z = z.clone()
    bump = 0.01 * float(z.max() - z.min())
    z[..., 0, :], z[..., -1, :] = z[..., 1, :] + bump, z[..., -2, :] + bump
    z[..., :, 0], z[..., :, -1] = z[..., :, 1] + bump, z[..., :, -2] + bump
    return torch.where(outlets, torch.zeros_like(z), z)


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
    if style not in SAMPLERS:
        raise ValueError(f"unknown style {style!r}; expected one of {STYLE_NAMES}")
    if size < 16:
        raise ValueError(f"size must be >= 16 cells, got {size}")
    if not cell_size > 0:
        raise ValueError(f"cell_size must be positive metres, got {cell_size}")
    rng = np.random.default_rng([seed, STYLE_NAMES.index(style)])
    p = dict(params) if params is not None else sample_params(style, rng)
    dev = torch.device(device)
    dtype = torch.float32

    def t(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x)).to(dev, dtype)[None]

    # 1-2. Uplift-driven fluvial landscape, in uplift units (1 = uplift per step at the fastest).
    steps = int(p["steps"])
    base = fbm(int(size * 1.25), rng, beta=p["fbm_beta"])[:size, :size]
    rate = t(_uplift_field(style, p, size, rng))
    z = t(base) * p["init_amplitude"] * steps * 0.5
    if style == "canyon_mesa":
        z = z + steps * 0.3  # an old plateau surface: canyons cut back from the edges
    fluvial = er.FluvialParams(k=p["k_cells"] * cell_size ** (1.0 - 2.0 * p["m"]), m=p["m"])
    wear = torch.zeros_like(z)
    dep = torch.zeros_like(z)
    cum_uplift = torch.zeros_like(z)
    area = torch.zeros_like(z)
    outlets = _outlet_mask(style, size, rng, dev)
    for _ in range(steps):
        z = _closed_boundary(z, outlets)
        z, _ = er.uplift(z, rate, 1.0)
        cum_uplift = cum_uplift + rate
        erod = None
        if style == "canyon_mesa":
            # Flat-lying strata move up with the rock: hard caprock where the layer phase is low.
            rock_z = (z - cum_uplift) / max(steps * 0.5, 1.0)
            phase = torch.remainder(rock_z / p["layer_cells"], 1.0)
            erod = torch.where(phase < p["hard_fraction"], torch.full_like(z, p["hard_ratio"]), torch.ones_like(z))
        before = z
        z, _, info = er.fluvial_step(z, cell_size, fluvial, erod, outlets)
        z, _ = er.diffusion_step(z, cell_size, p["kappa_cells"] * cell_size * cell_size)
        wear, dep = wear + (before - z).clamp(min=0), dep + (z - before).clamp(min=0)
        area = info["area"]

    z = _closed_boundary(z, outlets)
    # Scale to metres.
    lo = float(z.min())
    scale = p["relief_m"] / max(float(z.max()) - lo, 1e-9)
    z = (z - lo) * scale
    wear, dep = wear * scale, dep * scale

    # 3. Style extras at metric scale.
    sand = None
    def track(new: torch.Tensor) -> torch.Tensor:
        nonlocal wear, dep
        wear = wear + (z - new).clamp(min=0)
        dep = dep + (new - z).clamp(min=0)
        return new
    if style == "glacial_valleys":
        gp = er.GlacialParams(width_cells=p["trough_width_cells"], wall_height=p["trough_wall_m"], ela=p["ela"])
        z = track(er.glacial_carving(z, cell_size, gp, area)[0])
    if style == "volcanic":
        # A crater in the highest cone: a bowl below the rim.
        zz = z[0]
        r0, c0 = divmod(int(torch.argmax(zz)), size)
        yy, xx = torch.meshgrid(torch.arange(size, device=dev), torch.arange(size, device=dev), indexing="ij")
        r = torch.hypot((yy - r0).to(dtype), (xx - c0).to(dtype)) / (p["crater_frac"] * size)
        bowl = zz.max() * (1.0 - 0.25 * (1.0 - r.clamp(max=1.0) ** 2))
        z = track(torch.minimum(z, bowl[None]))
    z = track(er.thermal_erosion(z, cell_size, er.ThermalParams(talus_deg=p["talus_deg"], iterations=15))[0])
    hyd = er.HydraulicParams(iterations=20, rain=p["hydraulic_rain"])
    z = track(er.hydraulic_erosion(z, cell_size, hyd)[0])
    if style == "desert_dunes":
        # Dunes are hundreds of metres long: run the slab model on a 2x coarser grid (fast, and
        # dune-scale), then upsample the sand thickness smoothly.
        k, f = int(p["wind_dir"]), 2
        bed = torch.nn.functional.avg_pool2d(torch.rot90(z, k, dims=(-2, -1))[None], f)[0]
        sand_r = torch.full_like(bed, p["sand_m"])
        g = torch.Generator(device=dev).manual_seed(int(rng.integers(2 ** 31)))
        ap = er.AeolianParams(iterations=int(p["dune_iterations"]), slab=p["slab_m"], hop=2,
                               p_pick=p["dune_pick"])
        sand_r, _ = er.aeolian_transport(bed, sand_r, cell_size * f, ap, g)
        sand_r = torch.nn.functional.interpolate(sand_r[None], size=(size, size), mode="bicubic",
                                                 align_corners=False)[0].clamp(min=0)
        sand = torch.rot90(sand_r, -k, dims=(-2, -1))
        z = track(z + sand)

    sea = 0.0
    if p["sea_level"] > 0:
        sea = float(torch.quantile(z.flatten().double(), p["sea_level"]))
    z = z - sea  # heights relative to sea level
    heights = z[0].double().cpu().numpy().astype(np.float32)
    filled = fill_depressions(z[0].double())
    receiver, _, _ = d8_receivers(filled[None], cell_size)
    area_np = accumulate(receiver, torch.full_like(filled[None], cell_size ** 2))[0].cpu().numpy()
    flow = flow_mask(area_np, cell_size)
    wear_m = depth_mask(wear[0].double().cpu().numpy(), 0.02 * p["relief_m"])
    dep_m = depth_mask(dep[0].double().cpu().numpy(), 0.01 * p["relief_m"])
    lake = (filled[0] if filled.dim() == 3 else filled).cpu().numpy() - heights
    water = ((heights < 0) | (lake > 0.5)).astype(np.float32)
    sand_np = np.zeros_like(heights) if sand is None else sand[0].double().cpu().numpy()
    snow = None
    if "snow_line" in p:
        snow = float(heights.min() + p["snow_line"] * np.ptp(heights))
    masks = {
        "flow": flow, "wear": wear_m, "deposition": dep_m,
        "slope": np.clip(slope_degrees(heights, cell_size) / 60.0, 0, 1).astype(np.float32),
        "water": water, "sand": depth_mask(sand_np, 2.0),
    }
    splat = splat_map(heights, cell_size, flow, dep_m, sand=sand_np, snow_line=snow)
    p_out = {**p, **{f"slider_{k}": v for k, v in sliders(p).items()}}
    return Heightfield(heights, cell_size, masks, splat, SPLAT_NAMES, style), p_out
