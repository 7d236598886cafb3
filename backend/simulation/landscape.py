"""Stream-power landscape evolution through fastscapelib: drainage networks carved into a map.

The diffusion models make plausible large forms but no connected drainage: their maps are full of
closed pits and lumps. A few implicit steps of the stream-power law (Braun and Willett 2013, solved in
O(n) along the flow graph by fastscapelib, the field's reference implementation) plus linear hillslope
diffusion route every cell to an outlet, cut valleys whose depth grows with upstream area, and wear
the lumps between them. Closed depressions are routed to their spill (minimum spanning tree of basins,
Cordonnier et al. 2019), so lakes drain instead of staying pits.

With slope exponent n = 1 both processes are linear in the heights for a fixed flow graph, so a map
erodes the same whether it is in metres or network units (the relief only scales the result). There
is no randomness: the same map and parameters always give the same result.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import fastscapelib as fs
import numpy as np

# on_step(step, total, heights): after each step; may raise to cancel between steps.
ErosionCallback = Callable[[int, int, np.ndarray], None]


@dataclass(frozen=True)
class StreamPower:
    """One erosion run: ``steps`` implicit steps of stream power and hillslope diffusion, no uplift.

    Per step a channel cell moves toward its receiver by the factor F = incision * A**area_exponent /
    distance (A: upstream area in m², distance in m), so ``incision`` (K dt) sets how deep valleys cut
    relative to their catchment; ``diffusion`` (D dt, m²) sets how far slopes relax per step.
    """

    steps: int
    incision: float
    diffusion: float
    area_exponent: float = 0.45


# The erosion stage after the diffusion cascade, at the models' own 30 m cells (reports/terrain_models
# measures each: pits, drainage exponent, hypsometry, against real elevation samples).
EROSION_STAGES: dict[str, StreamPower | None] = {
    "off": None,
    "light": StreamPower(steps=4, incision=1.0, diffusion=20.0),
    "mature": StreamPower(steps=10, incision=1.0, diffusion=40.0),
}


def scaled(params: StreamPower | None, share: float) -> StreamPower | None:
    """``params`` with incision and diffusion times ``share`` (a style mix's drainage); None for no stage."""
    if params is None or share <= 0:
        return None
    return replace(params, incision=params.incision * share, diffusion=params.diffusion * share)


def erode(heights: np.ndarray, cell_size: float, params: StreamPower,
          on_step: ErosionCallback | None = None) -> np.ndarray:
    """``heights`` [H, W] after ``params.steps`` steps; the border is the base level (kept as it is).

    Closed depressions are routed to their spill only in the first step: that is where the sampled map's
    pits are, and resolving them costs three times a plain D8 routing (0.027 vs 0.010 s at 256², 0.62 vs
    0.14 s at 1024²); later steps keep 90 % of the pit reduction with plain routing.
    """
    rows, cols = heights.shape
    grid = fs.RasterGrid([rows, cols], [cell_size, cell_size], fs.NodeStatus.FIXED_VALUE)
    graphs = [fs.FlowGraph(grid, [fs.SingleFlowRouter(), fs.MSTSinkResolver()]),
              fs.FlowGraph(grid, [fs.SingleFlowRouter()])]
    channels = [fs.SPLEroder(g, k_coef=params.incision, area_exp=params.area_exponent, slope_exp=1.0,
                             tolerance=1e-5) for g in graphs]
    hillslopes = fs.DiffusionADIEroder(grid, params.diffusion)
    z = np.ascontiguousarray(heights, dtype=np.float64)
    area = np.empty_like(z)
    for step in range(params.steps):
        which = min(step, 1)
        graphs[which].update_routes(z)
        graphs[which].accumulate(area, 1.0)
        z = z - channels[which].erode(z, area, 1.0)
        z = z - hillslopes.erode(z, 1.0)
        if on_step is not None:
            on_step(step + 1, params.steps, z)
    return z
