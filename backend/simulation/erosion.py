"""Landscape-evolution processes on batched heightfields ``z: [B, H, W]`` (metres).

Every process returns the new heights and a :class:`Budget` of the sediment it moved, so a test
can check mass conservation: ``eroded = deposited + out`` (volumes in m³), where ``out`` is the
material that left through the boundary ring (negative when a process carried material in).
Uplift is a source, not erosion, and is reported separately by :func:`uplift`.

The outer ring of cells is fixed base level: processes never change its heights, and material
delivered there leaves the map. Units: metres for heights and cell sizes; ``dt`` is a
dimensionless model step (parameters are calibrated per style, not to geological years).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.ndimage
import torch

from backend.simulation.flow import (
    D8_DISTANCES,
    D8_OFFSETS,
    accumulate,
    boundary_mask,
    d8_receivers,
    fill_depressions,
    propagate_affine,
    shift,
)


@dataclass
class Budget:
    """Sediment volumes (m³) per batch element, each [B]."""

    eroded: torch.Tensor
    deposited: torch.Tensor
    out: torch.Tensor

    @staticmethod
    def zeros(b: int, device: torch.device | str, dtype: torch.dtype = torch.float64) -> "Budget":
        z = torch.zeros(b, device=device, dtype=dtype)
        return Budget(z.clone(), z.clone(), z.clone())

    def __add__(self, other: "Budget") -> "Budget":
        return Budget(self.eroded + other.eroded.to(self.eroded),
                      self.deposited + other.deposited.to(self.eroded),
                      self.out + other.out.to(self.eroded))

    def residual(self) -> torch.Tensor:
        """eroded - deposited - out: zero up to rounding when a process conserves mass."""
        return self.eroded - self.deposited - self.out


def _interior(z: torch.Tensor) -> torch.Tensor:
    """[H, W] float mask, 1 inside, 0 on the boundary ring, in z's dtype."""
    return (~boundary_mask(z.shape[-2], z.shape[-1], z.device)).to(z.dtype)


def _sum(x: torch.Tensor, area: float) -> torch.Tensor:
    """[B, H, W] depths (m) -> [B] volumes (m³)."""
    return x.sum(dim=(-2, -1)) * area


# --------------------------------------------------------------------------- uplift


def uplift(z: torch.Tensor, rate: torch.Tensor, dt: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Raise the interior by ``rate * dt`` (rate: [B, H, W] or [H, W], m per step).

    Returns (z, uplifted thickness summed per batch element [B], in metres·cells).
    """
    dz = rate.expand_as(z) * dt * _interior(z)
    return z + dz, dz.sum(dim=(-2, -1))


# --------------------------------------------------------------------------- fluvial


@dataclass
class FluvialParams:
    k: float = 2e-4  # erodibility; incision per step = dt * k * A^m * S^n
    m: float = 0.5  # drainage-area exponent (m/n ~ 0.45 in real rivers)
    n: float = 1.0  # slope exponent
    dt: float = 1.0
    lake_tol: float = 1e-3  # m: filled depth above which a cell counts as lake


def fluvial_step(z: torch.Tensor, cell_size: float, p: FluvialParams, erodibility: torch.Tensor | None = None,
                 outlets: torch.Tensor | None = None) -> tuple[torch.Tensor, Budget, dict[str, torch.Tensor]]:
    """One stream-power incision step, E = k A^m S^n, with sediment trapped by lakes.

    z: [B, H, W]; erodibility: optional [B, H, W] multiplier of k (rock strength); outlets:
    optional [H, W] bool cells where water leaves (default: the whole ring). Other boundary cells
    keep their heights but pass water and sediment on, so rivers leave only at the outlets.
    Flow is routed over the depression-filled surface. Incision is implicit (Braun & Willett 2013):
    ``z_i' = (z_i + F z_r') / (1 + F)`` with F = dt k A^m S^(n-1) / d (exact for n = 1, slope
    linearised otherwise), solved for all cells at once, so a channel never cuts below the cell
    it drains into, knickpoints travel any distance per step and large steps stay stable. Eroded sediment travels down
    the flow tree; lakes (filled depth > lake_tol) trap it, each filling a fraction
    min(1, inflow / lake volume) of its depth everywhere; sediment reaching an outlet, and the
    overflow of full lakes (assumed to bypass any further lake), is ``out``.
    Returns (z, budget, {"area": drainage area m², "lake": lake depth m, "incision": m}).
    """
    b, h, w = z.shape
    area = cell_size * cell_size
    filled64 = fill_depressions(z, outlets=outlets)
    filled = filled64.to(z.dtype)
    receiver, slope, dist = d8_receivers(filled64, cell_size, outlets)
    exits = (1.0 - _interior(z)) if outlets is None else outlets.to(z)
    drain = accumulate(receiver, torch.full_like(z, area))
    inner = _interior(z)
    lake_depth = (filled - z).clamp(min=0) * inner
    lake = lake_depth > p.lake_tol
    k = p.k if erodibility is None else p.k * erodibility
    factor = p.dt * k * drain.pow(p.m) * slope.to(z.dtype).clamp(min=1e-9).pow(p.n - 1.0) / dist.to(z.dtype)
    factor = factor * inner * (~lake).to(z.dtype)
    # Lakes and the boundary act as base level at their water surface (the filled height).
    base = torch.where(lake | (inner == 0), filled, z)
    z_new = propagate_affine(receiver, base / (1.0 + factor), factor / (1.0 + factor))
    incision = ((z - z_new).clamp(min=0) * inner * (~lake).to(z.dtype)).to(z.dtype)
    z = z - incision

    # Sediment routing: lakes and the boundary are sinks of the sediment tree.
    flat = torch.arange(h * w, device=z.device).reshape(h, w).expand(b, h, w)
    sed_receiver = torch.where(lake, flat, receiver)
    qs = accumulate(sed_receiver, incision * area)  # m³ arriving at (and made in) each cell
    out = (qs * exits).sum(dim=(-2, -1))
    deposited = torch.zeros(b, dtype=z.dtype, device=z.device)
    if bool(lake.any()):
        lake_np = lake.cpu().numpy()
        qs_np = qs.detach().cpu().double().numpy()
        depth_np = lake_depth.detach().cpu().double().numpy()
        frac = np.zeros((b, h, w))
        for i in range(b):
            labels, count = scipy.ndimage.label(lake_np[i], structure=np.ones((3, 3)))
            inflow = np.bincount(labels.ravel(), weights=qs_np[i].ravel(), minlength=count + 1)[1:]
            volume = np.bincount(labels.ravel(), weights=depth_np[i].ravel(), minlength=count + 1)[1:] * area
            f = np.minimum(1.0, inflow / np.maximum(volume, 1e-30))
            frac[i] = np.concatenate([[0.0], f])[labels]
            out[i] += float(inflow.sum() - (f * volume).sum())  # overflow of full lakes
        deposit = torch.from_numpy(frac).to(z) * lake_depth
        z = z + deposit
        deposited = _sum(deposit, area).to(z.dtype)
    eroded = _sum(incision, area)
    budget = Budget(eroded.double(), deposited.double(), out.double())
    return z, budget, {"area": drain, "lake": lake_depth, "incision": incision}


# --------------------------------------------------------------------------- hillslopes


def diffusion_step(z: torch.Tensor, cell_size: float, kappa_dt: float) -> tuple[torch.Tensor, Budget]:
    """Linear hillslope diffusion dz/dt = kappa * laplacian(z), in conservative flux form.

    z: [B, H, W]; kappa_dt: m² (diffusivity times step). Fluxes cross the 4-neighbour edges;
    those into boundary cells are ``out`` (signed) and boundary heights stay fixed. Explicit
    substeps keep kappa_dt / cell_size² <= 0.2 for stability.
    """
    if kappa_dt < 0:
        raise ValueError(f"kappa_dt must be >= 0, got {kappa_dt}")
    b = z.shape[0]
    area = cell_size * cell_size
    inner = _interior(z)
    budget = Budget.zeros(b, z.device)
    c_total = kappa_dt / area
    steps = max(1, math.ceil(c_total / 0.2))
    c = c_total / steps
    for _ in range(steps):
        qx = c * (z[..., :, :-1] - z[..., :, 1:])  # east-going flux across vertical edges
        qy = c * (z[..., :-1, :] - z[..., 1:, :])  # south-going flux across horizontal edges
        # Edges between two boundary cells carry nothing.
        qx = qx * torch.maximum(inner[:, :-1], inner[:, 1:])
        qy = qy * torch.maximum(inner[:-1, :], inner[1:, :])
        div = torch.zeros_like(z)
        div[..., :, :-1] += qx
        div[..., :, 1:] -= qx
        div[..., :-1, :] += qy
        div[..., 1:, :] -= qy
        dz = -div
        budget = budget + Budget(_sum((-dz).clamp(min=0) * inner, area), _sum(dz.clamp(min=0) * inner, area),
                                 _sum(dz * (1.0 - inner), area))
        z = z + dz * inner
    return z, budget


def _talus_flux(z: torch.Tensor, cell_size: float, talus: float, rate: float,
                movable: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Material each interior cell sends down to its neighbours steeper than ``talus`` (tan), in shares of its
    excess over the talus drop.

    Returns (move [B, H, W] total sent, received [B, H, W] from the neighbours), in metres.
    """
    inner = _interior(z)
    big = torch.finfo(z.dtype).max / 4
    h, w = z.shape[-2:]
    padded = torch.nn.functional.pad(z, (1, 1, 1, 1), value=big)  # neighbours as views, no copies
    excess = torch.empty((len(D8_OFFSETS), *z.shape), dtype=z.dtype, device=z.device)
    for k, ((dr, dc), d) in enumerate(zip(D8_OFFSETS, D8_DISTANCES)):
        torch.sub(z, padded[..., 1 + dr:1 + dr + h, 1 + dc:1 + dc + w], out=excess[k])
        excess[k].sub_(talus * d * cell_size).clamp_(min=0)
    total = excess.sum(0)
    move = rate * 0.5 * excess.max(0).values * inner
    if movable is not None:
        move = torch.minimum(move, movable.clamp(min=0))
    return move, _gather(excess, move / total.clamp(min=1e-30))


def _gather(shares: torch.Tensor, amount: torch.Tensor) -> torch.Tensor:
    """Material received when every cell sends ``amount`` [B, H, W] times ``shares[k]`` [8, B, H, W] to its
    neighbour k (off the grid: lost), without building the [8, B, H, W] of what is sent."""
    h, w = shares.shape[-2:]
    received = shares.new_zeros((*shares.shape[1:-2], h + 2, w + 2))
    for k, (dr, dc) in enumerate(D8_OFFSETS):
        received[..., 1 + dr:1 + dr + h, 1 + dc:1 + dc + w].addcmul_(shares[k], amount)
    return received[..., 1:-1, 1:-1]


@dataclass
class ThermalParams:
    talus_deg: float = 35.0  # angle above which material slides (scree ~ 30-40 degrees)
    rate: float = 0.5  # fraction of the excess moved per iteration (<= 1 for stability)
    iterations: int = 20


def thermal_erosion(z: torch.Tensor, cell_size: float, p: ThermalParams,
                    movable: torch.Tensor | None = None) -> tuple[torch.Tensor, Budget, torch.Tensor]:
    """Talus-angle slope failure: cells steeper than the talus angle shed material downhill.

    z: [B, H, W]; movable: optional [B, H, W] thickness that may move (e.g. loose sand); it is
    updated and returned. Returns (z, budget, movable or zeros).
    """
    if not 0 < p.talus_deg < 90:
        raise ValueError(f"talus_deg must be in (0, 90), got {p.talus_deg}")
    area = cell_size * cell_size
    inner = _interior(z)
    talus = math.tan(math.radians(p.talus_deg))
    budget = Budget.zeros(z.shape[0], z.device)
    layer = movable.clone() if movable is not None else torch.zeros_like(z)
    for _ in range(p.iterations):
        move, received = _talus_flux(z, cell_size, talus, p.rate, layer if movable is not None else None)
        budget = budget + Budget(_sum(move, area), _sum(received * inner, area),
                                 _sum(received * (1.0 - inner), area))
        z = z + (received - move) * inner
        layer = (layer + received - move) * inner
    return z, budget, layer


# --------------------------------------------------------------------------- hydraulic


@dataclass
class HydraulicParams:
    iterations: int = 60
    rain: float = 0.01  # m of water added per iteration on every cell
    capacity: float = 2.0  # sediment capacity per (m of moving water x slope)
    erode_rate: float = 0.3  # fraction of the capacity deficit picked up per iteration
    deposit_rate: float = 0.3  # fraction of the excess load dropped per iteration
    evaporation: float = 0.05  # fraction of water lost per iteration
    min_slope: float = 0.005  # keeps capacity > 0 on flats so water still carries a little
    max_cut: float = 0.1  # at most this fraction of the drop to the lowest neighbour per iteration


def hydraulic_erosion(z: torch.Tensor, cell_size: float, p: HydraulicParams) -> tuple[torch.Tensor, Budget]:
    """Grid-based water + sediment transport (the "simple hydraulic erosion" family).

    Per iteration: rain falls; each interior cell sends up to half its water-surface drop to
    lower neighbours (weighted by gradient); capacity = capacity * moving water * slope; the bed
    is eroded towards capacity (never more than ``max_cut`` of the drop to its lowest neighbour,
    so no pits or terraces are dug) or the excess load is deposited; load travels with the water; water and load that
    reach the boundary leave (``out``). At the end the remaining load settles where it is.
    z: [B, H, W] -> (z, budget).
    """
    if p.iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {p.iterations}")
    area = cell_size * cell_size
    inner = _interior(z)
    edge = 1.0 - inner
    water = torch.zeros_like(z)
    load = torch.zeros_like(z)
    budget = Budget.zeros(z.shape[0], z.device)
    big = torch.finfo(z.dtype).max / 4
    for _ in range(p.iterations):
        water = (water + p.rain) * inner
        surface = z + water
        drops = torch.stack([surface - shift(surface, dr, dc, fill=big) for dr, dc in D8_OFFSETS])
        grads = torch.stack([drops[k].clamp(min=0) / (D8_DISTANCES[k] * cell_size) for k in range(8)])
        bed_drop = torch.stack([z - shift(z, dr, dc, fill=big) for dr, dc in D8_OFFSETS]).max(0).values
        total = grads.sum(0)
        slope = grads.max(0).values
        move = torch.minimum(water, 0.5 * drops.max(0).values.clamp(min=0)) * inner
        capacity = p.capacity * move * slope.clamp(min=p.min_slope)
        deficit = capacity - load
        erode = torch.minimum(p.erode_rate * deficit.clamp(min=0), p.max_cut * bed_drop.clamp(min=0)) * inner
        deposit = torch.minimum(p.deposit_rate * (-deficit).clamp(min=0), load) * inner
        z = z + deposit - erode
        load = load + erode - deposit
        budget = budget + Budget(_sum(erode, area), _sum(deposit, area), torch.zeros_like(budget.out))
        frac = grads / total.clamp(min=1e-30)
        leaving = move / water.clamp(min=1e-30)
        load_out = load * leaving
        water = water - move + _gather(frac, move)
        load = load - load_out + _gather(frac, load_out)
        budget.out = budget.out + _sum(load * edge, area)
        load = load * inner
        water = water * inner * (1.0 - p.evaporation)
    settle = load * inner
    z = z + settle
    budget.deposited = budget.deposited + _sum(settle, area)
    return z, budget


# --------------------------------------------------------------------------- aeolian


@dataclass
class AeolianParams:
    iterations: int = 150
    slab: float = 0.5  # m of sand moved per pick
    hop: int = 3  # cells a slab travels per hop (downwind = east)
    p_pick: float = 0.3  # chance an exposed sand cell loses a slab per iteration
    p_sand: float = 0.6  # chance a slab lands on sand
    p_bare: float = 0.4  # chance a slab lands on bare ground
    shadow_deg: float = 15.0  # lee shadow angle: no pick-up, certain deposition
    repose_deg: float = 33.0  # sand avalanches above this angle
    max_hops: int = 6


def _avalanche_periodic(surface: torch.Tensor, sand: torch.Tensor, cell_size: float, repose: float,
                        iterations: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sand steeper than ``repose`` (tan) slides to lower neighbours on a torus (no boundary).

    surface, sand: [B, H, W]. Returns (sand, moved thickness per cell summed over iterations).
    """
    moved_total = torch.zeros_like(sand)
    for _ in range(iterations):
        z = surface + sand
        excess = torch.stack([
            (z - torch.roll(z, (-dr, -dc), dims=(-2, -1)) - repose * d * cell_size).clamp(min=0)
            for (dr, dc), d in zip(D8_OFFSETS, D8_DISTANCES)
        ])
        move = torch.minimum(0.25 * excess.max(0).values, sand)
        sent = excess / excess.sum(0).clamp(min=1e-30) * move
        received = sum(torch.roll(sent[k], (dr, dc), dims=(-2, -1)) for k, (dr, dc) in enumerate(D8_OFFSETS))
        sand = sand - move + received
        moved_total = moved_total + move
    return sand, moved_total


def aeolian_transport(bed: torch.Tensor, sand: torch.Tensor, cell_size: float, p: AeolianParams,
                      generator: torch.Generator) -> tuple[torch.Tensor, Budget]:
    """Werner (1995) slab model of dunes, vectorised; wind blows east (+column).

    bed, sand: [B, H, W] (m). The sand sea is periodic (a torus, as in Werner's model), so
    nothing leaves: ``out`` is 0 and the budget checks eroded = deposited. Exposed sand loses a
    slab with probability p_pick; slabs hop ``hop`` cells downwind and land with probability
    p_sand / p_bare (always in a lee shadow); sand steeper than the angle of repose avalanches.
    Rotate inputs for other wind directions. Returns (new sand thickness, budget).
    """
    area = cell_size * cell_size
    b, h, w = sand.shape
    x = torch.arange(2 * w, device=sand.device, dtype=sand.dtype) * cell_size
    t_shadow = math.tan(math.radians(p.shadow_deg))
    repose = math.tan(math.radians(p.repose_deg))
    budget = Budget.zeros(b, sand.device)

    def shadow_of(surface: torch.Tensor) -> torch.Tensor:
        # Periodic lee test: look upwind across one full period.
        v = torch.cat([surface, surface], dim=-1) + t_shadow * x
        upwind = torch.cummax(v, dim=-1).values[..., w - 1:2 * w - 1]
        return (upwind - t_shadow * x[w:]) > surface + 1e-6

    for _ in range(p.iterations):
        shadow = shadow_of(bed + sand)
        rnd = torch.rand(sand.shape, generator=generator, device=sand.device, dtype=sand.dtype)
        moving = ((sand >= p.slab) & ~shadow & (rnd < p.p_pick)).to(sand.dtype) * p.slab
        sand = sand - moving
        budget.eroded = budget.eroded + _sum(moving, area)
        for hop in range(p.max_hops):
            moving = torch.roll(moving, p.hop, dims=-1)
            rnd = torch.rand(sand.shape, generator=generator, device=sand.device, dtype=sand.dtype)
            chance = torch.where(sand > 0, torch.full_like(sand, p.p_sand), torch.full_like(sand, p.p_bare))
            land = ((rnd < chance) | shadow | (hop == p.max_hops - 1)).to(sand.dtype)
            drop = moving * land
            sand = sand + drop
            budget.deposited = budget.deposited + _sum(drop, area)
            moving = moving - drop
        sand, slid = _avalanche_periodic(bed, sand, cell_size, repose, iterations=2)
        budget.eroded = budget.eroded + _sum(slid, area)
        budget.deposited = budget.deposited + _sum(slid, area)
    return sand, budget


# --------------------------------------------------------------------------- glacial


@dataclass
class GlacialParams:
    min_area_cells: float = 400.0  # drainage area (cells) where a valley glacier starts
    width_cells: float = 8.0  # half-width of the trough at full size
    wall_height: float = 250.0  # m: trough wall height at half-width (U-profile curvature)
    ela: float = 0.3  # equilibrium-line altitude as a fraction of the relief: glaciers start above


def glacial_carving(z: torch.Tensor, cell_size: float, p: GlacialParams, area: torch.Tensor,
                    span: tuple[float, float] | None = None) -> tuple[torch.Tensor, Budget]:
    """Carve U-shaped troughs along large valleys (a geometric proxy for glacial erosion).

    z, area: [B, H, W] (area = drainage area, m²). Around each valley-glacier cell the surface is
    lowered to ``floor + wall_height * (d / width)^2`` (a parabolic trough; d = distance to the
    nearest glacier cell, floor = that cell's height), widths growing with sqrt(area). Ice exports
    all eroded rock through the boundary (``out``). ``span`` (lo, hi): the heights the ELA is a fraction of
    (default: each map's own range; a tile of a bigger world passes the world's).
    """
    area_cells = area / (cell_size * cell_size)
    if span is None:
        lo, hi = z.amin(dim=(-2, -1), keepdim=True), z.amax(dim=(-2, -1), keepdim=True)
    else:
        lo, hi = torch.full_like(z[..., :1, :1], span[0]), torch.full_like(z[..., :1, :1], span[1])
    z_np = z.detach().cpu().double().numpy()
    a_np = area_cells.detach().cpu().double().numpy()
    ela_np = (lo + p.ela * (hi - lo)).cpu().double().numpy()
    carved = np.empty_like(z_np)
    for i in range(z.shape[0]):
        ice = a_np[i] >= p.min_area_cells
        # A glacier is only where the valley (or the ridge above it) reaches past the ELA.
        ice &= scipy.ndimage.maximum_filter(z_np[i], size=int(2 * p.width_cells + 1)) > ela_np[i]
        if not ice.any():
            carved[i] = z_np[i]
            continue
        dist, (ri, ci) = scipy.ndimage.distance_transform_edt(~ice, return_indices=True)
        floor = z_np[i][ri, ci]
        width = p.width_cells * np.clip(np.sqrt(a_np[i][ri, ci] / p.min_area_cells), 1.0, 3.0)
        trough = floor + p.wall_height * (dist / width) ** 2
        carved[i] = np.minimum(z_np[i], trough)
    new = torch.from_numpy(carved).to(z)
    inner = _interior(z)
    cut = (z - new).clamp(min=0) * inner
    z = z - cut
    vol = _sum(cut, cell_size * cell_size).double()
    return z, Budget(vol, torch.zeros_like(vol), vol.clone())
