"""Uplift-driven landscape evolution for the corpus: rock rises, rivers cut it, slopes relax.

Each step lifts the land by the uplift field, routes flow (with closed depressions routed to their spill,
Cordonnier et al. 2019), incises channels by the stream-power law solved implicitly along the flow graph
(Braun and Willett 2013, through fastscapelib) and relaxes hillslopes by linear diffusion solved
implicitly (backward Euler, exactly, in the cosine basis: no-flux edges, unconditionally stable and
free of the oscillations Crank-Nicolson ADI leaves at large steps).

Units are the uplift's: one step lifts the fastest-rising rock by 1. With slope exponent 1 both
processes are linear, so the landscape's shape does not depend on that scale and the caller rescales
the result to the relief it wants. The shape is set by two lengths:
* the hillslope length ``hillslope_m``: where diffusion hands over to channels, since a hillslope of
  length L balances a channel head when L**(1 + 2m) = D / K (so D = K L**(1 + 2m));
* how far the network got: K times the steps, in units of the time rivers need to cross the map.

Channels cut toward the steepest of eight neighbours, but upstream area is gathered over multiple flow
directions (slope ** 8, as the generator's light erosion stage does): gathered along the steepest paths
(D8), area on smooth slopes runs down straight lines along the grid's axes and diagonals and the corpus's
valleys came out as facets facing the grid (``realism.grid_alignment`` 0.07-0.33 on corpus v2, real DEMs
0.00 +- 0.01), which the models and the style classifier then learned.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import fastscapelib as fs
import numpy as np

from backend.simulation import hillslope
from backend.simulation.landscape import NEAR_STEEPEST_FLOW, Routing

# erodibility(z, rock_depth) -> per-cell multiplier of K (strata), or None for uniform rock.
Erodibility = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Evolution:
    """One run's parameters in uplift units (one step lifts the fastest rock by 1)."""

    steps: int
    incision: float  # K dt: stream-power coefficient per step (A in m², distances in m)
    hillslope_m: float  # hillslope length where channels take over, metres
    area_exponent: float = 0.45  # m of the stream-power law (n = 1)
    routing: Routing = NEAR_STEEPEST_FLOW  # how upstream area is gathered (the light erosion stage's way)

    @property
    def diffusion(self) -> float:
        """D dt per step (m²) that puts the channel heads at ``hillslope_m``."""
        return self.incision * self.hillslope_m ** (1.0 + 2.0 * self.area_exponent)


@dataclass
class Evolved:
    """The landscape after a run: heights, the material each cell lost, and its drainage area."""

    heights: np.ndarray  # (H, W) float64, uplift units
    wear: np.ndarray  # (H, W) total incised and diffused away, uplift units
    deposition: np.ndarray  # (H, W) total laid down by diffusion
    area: np.ndarray  # (H, W) drainage area at the end, m²


def evolve(initial: np.ndarray, uplift: np.ndarray, base_level: np.ndarray, cell_size: float,
           params: Evolution, erodibility: Erodibility | None = None) -> Evolved:
    """Run ``params.steps`` steps from ``initial`` under ``uplift`` (per step, in [0, 1]).

    ``base_level`` (bool) marks the cells held at height 0 where water leaves the map (an ocean ring, or a
    few outlets on an edge); every other edge cell is closed (water turns back in), so basins integrate
    into a few river networks instead of dozens of edge gullies.
    """
    rows, cols = initial.shape
    fixed = {(int(r), int(c)): fs.NodeStatus.FIXED_VALUE for r, c in np.argwhere(base_level)}
    if not fixed:
        raise ValueError("the landscape needs at least one base-level cell for water to leave")
    grid = fs.RasterGrid([rows, cols], [cell_size, cell_size], fs.NodeStatus.CORE, fixed)
    graph = fs.FlowGraph(grid, [fs.SingleFlowRouter(), fs.MSTSinkResolver()])
    gathering = params.routing.area_graph(grid, through_spills=True)
    lift = np.where(base_level, 0.0, uplift).astype(np.float64)
    z = np.where(base_level, 0.0, initial).astype(np.float64)
    cumulative = np.zeros_like(z)
    wear, deposition, area = np.zeros_like(z), np.zeros_like(z), np.empty_like(z)
    k_start = params.incision if erodibility is None else np.full(z.shape, params.incision)
    eroder = fs.SPLEroder(graph, k_coef=k_start, area_exp=params.area_exponent, slope_exp=1.0,
                          tolerance=1e-5)
    for _ in range(params.steps):
        z = z + lift
        cumulative += lift
        graph.update_routes(z)
        if gathering is None:
            graph.accumulate(area, 1.0)
        else:
            _gather_over_multiple_flow(gathering, graph, z, area)
        if erodibility is not None:
            eroder.k_coef = (params.incision * erodibility(z, cumulative))
        incised = z - eroder.erode(z, area, 1.0)
        relaxed = hillslope.no_flux(incised, params.diffusion, cell_size)
        relaxed[base_level] = 0.0
        wear += np.clip(z - relaxed, 0.0, None)
        deposition += np.clip(relaxed - z, 0.0, None)
        z = relaxed
    return Evolved(z, wear, deposition, area.copy())


def _gather_over_multiple_flow(gathering: fs.FlowGraph, steepest: fs.FlowGraph, z: np.ndarray,
                               area: np.ndarray) -> None:
    """``area`` gathered over multiple flow directions, and along the ``steepest`` graph's paths (its routes
    up to date) where that is undefined: a pit below the base level beside it has only higher receivers, whose
    slope ** p shares are NaN."""
    gathering.update_routes(z)
    gathering.accumulate(area, 1.0)
    undefined = ~np.isfinite(area)
    if undefined.any():
        along_steepest = np.empty_like(area)
        steepest.accumulate(along_steepest, 1.0)
        area[undefined] = along_steepest[undefined]
