"""Annealed plausibility refinement of a voxel grid (seed 004's idea without its entropy term).

The target is p(x) ∝ exp(-beta (E(x) + U(x))): E the local plausibility energy (``energy.local_energy``),
U a unary cost per cell and class that keeps the sample near what the model drew (``model_unary``). Three
tools, used in this order by the generator:

* ``delete_floating``: rock not connected to an anchoring face becomes air (exact, no sampling);
* re-masking and redrawing the violating cells with the model (the generator passes its inpainting as a
  callback, see ``backend.generators.voxel_chunks``);
* ``anneal``: random-scan single-site Metropolis-Hastings (a Gibbs move proposed uniformly among the other
  classes, accepted with min(1, exp(-beta dE))) over the cells near violations, at a rising inverse
  temperature. The energy change of a move is computed on a small window around the cell: every local term
  reads at most ``min_overhang_cells`` cells up and one around, so terms outside the window cancel.

At a fixed beta the sampler leaves p invariant (symmetric proposal, detailed balance), which the tests check
against the enumerated distribution of a tiny grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from . import energy as en


@dataclass(frozen=True)
class AnnealSchedule:
    """Inverse temperatures rising geometrically from beta_start to beta_end, sweeps over the sites at each."""

    beta_start: float = 0.5
    beta_end: float = 8.0
    stages: int = 5
    sweeps: int = 1
    unary_weight: float = 1.0  # how strongly the model's drawing holds against the plausibility energy

    def betas(self) -> np.ndarray:
        return np.geomspace(self.beta_start, self.beta_end, self.stages)


def model_unary(drawn_tsdf: np.ndarray, fluid: np.ndarray, sharpness: float = 4.0, floor: float = 1e-3) -> np.ndarray:
    """(..., 4) cost -log p of each class per cell from the model's drawing (tsdf > 0 solid; fluid +1 water,
    -1 lava): what leaving the drawing costs."""
    p_solid = 1.0 / (1.0 + np.exp(-sharpness * drawn_tsdf))
    p_water = (1 - p_solid) * np.clip(fluid, 0, 1)
    p_lava = (1 - p_solid) * np.clip(-fluid, 0, 1)
    p_air = 1 - p_solid - p_water - p_lava
    probs = np.stack([p_air, p_solid, p_water, p_lava], axis=-1)
    return -np.log(probs + floor)


def delete_floating(classes: np.ndarray, anchors: tuple[str, ...] = en.FACES,
                    frozen: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """The classes with every floating solid cell (outside ``frozen``) turned to air, and how many were."""
    floating = en.floating_cells(classes == en.SOLID, anchors)
    if frozen is not None:
        floating &= ~frozen
    out = classes.copy()
    out[floating] = en.AIR
    return out, int(floating.sum())


def _window(shape: tuple[int, ...], site: tuple[int, int, int], reach_z: int) -> tuple[slice, ...]:
    z, y, x = site
    return (slice(max(z - reach_z, 0), z + reach_z + 1), slice(max(y - 2, 0), y + 3), slice(max(x - 2, 0), x + 3))


def metropolis_sweep(classes: np.ndarray, unary: np.ndarray, beta: float, sites: np.ndarray,
                     rng: np.random.Generator, weights: en.EnergyWeights = en.EnergyWeights(),
                     n_classes: int = en.N_CLASSES) -> np.ndarray:
    """One random-scan pass of single-site MH over ``sites`` (K, 3), in place on classes (..., Z, Y, X).

    Leading axes are independent chains (all visit the same site at a time, each proposes and accepts on
    its own). unary: (..., Z, Y, X, n) or broadcastable. Returns the number of accepted moves per chain.
    """
    batch = classes.shape[:-3]
    accepted = np.zeros(batch, np.int64)
    reach_z = weights.min_overhang_cells + 2
    for k in rng.permutation(len(sites)):
        site = tuple(int(v) for v in sites[k])
        window = (Ellipsis, *_window(classes.shape[-3:], site, reach_z))
        old = classes[(Ellipsis, *site)].copy()
        new = ((old + rng.integers(1, n_classes, size=batch)) % n_classes).astype(classes.dtype)
        before = en.local_energy(classes[window], weights)
        classes[(Ellipsis, *site)] = new
        after = en.local_energy(classes[window], weights)
        cell_unary = unary[(Ellipsis, *site, slice(None))]
        cell_unary = np.broadcast_to(cell_unary, (*batch, cell_unary.shape[-1]))
        d_unary = (np.take_along_axis(cell_unary, new[..., None].astype(np.int64), -1)[..., 0]
                   - np.take_along_axis(cell_unary, old[..., None].astype(np.int64), -1)[..., 0])
        d_e = after - before + d_unary
        accept = rng.random(batch) < np.exp(-beta * np.maximum(d_e, 0.0))
        classes[(Ellipsis, *site)] = np.where(accept, new, old)
        accepted += accept
    return accepted


def candidate_sites(classes: np.ndarray, weights: en.EnergyWeights, frozen: np.ndarray | None,
                    reach: int = 1) -> np.ndarray:
    """(K, 3) cells within ``reach`` of a local violation, outside ``frozen``."""
    bad = np.zeros(classes.shape, bool)
    for cells in en.local_violations(classes, weights).values():
        bad |= cells
    if reach:
        bad = ndimage.binary_dilation(bad, iterations=reach)
    if frozen is not None:
        bad &= ~frozen
    return np.argwhere(bad)


def anneal(classes: np.ndarray, unary: np.ndarray, rng: np.random.Generator,
           schedule: AnnealSchedule = AnnealSchedule(), weights: en.EnergyWeights = en.EnergyWeights(),
           frozen: np.ndarray | None = None) -> tuple[np.ndarray, list[float]]:
    """Anneal one (Z, Y, X) grid over the sites near violations (re-found at each stage).

    Returns the refined classes and the plausibility energy (local terms) after each stage, starting with
    the energy before the first.
    """
    classes = classes.copy()
    trace = [float(en.local_energy(classes, weights))]
    for beta in schedule.betas():
        sites = candidate_sites(classes, weights, frozen)
        for _ in range(schedule.sweeps if len(sites) else 0):
            metropolis_sweep(classes, schedule.unary_weight * unary, float(beta), sites, rng, weights)
        trace.append(float(en.local_energy(classes, weights)))
    return classes, trace
