"""One interface for simulation steps that a learned model may replace or gate, and the physics behind it.

A step reads some fields of the map (``reads``), predicts the change of some fields after ``horizon``
steps of the process (``delta``; a learned step jumps many steps in one call, from ``horizons``) and says
per tile whether the next period may be skipped because the land there is settled (``settled``). The
physics (fastscapelib stream power and hillslope diffusion, ``landscape.erode``) is one implementation;
the learned erosion surrogate (``backend.models.erosion_surrogate``) is another; later steps (thermal,
wind) plug in the same way and reuse the tiling, gating and fallback of ``surrogate_stage``.

The surrogate's inputs are computed here because they are physics: the flow graph (with depressions
routed to their spill, as the first physics step does) gives upstream area, and one implicit step of
length K of both processes (stream power on that fixed graph, then one backward-Euler hillslope step of
K D) gives the change a K-step run would make if the graph did not change and the two processes did not
interleave; at K = 1 it is the physics' step itself. The network learns the rest (the graph changing,
the interleaving, border effects).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol

import fastscapelib as fs
import numpy as np

from . import hillslope
from .landscape import EROSION_STAGES, StreamPower, erode

Fields = dict[str, np.ndarray]

# The erosion stage's per-step process (landscape.EROSION_STAGES at drainage share 1): what the surrogate
# learns; any other process runs as physics.
MATURE_STEP = replace(EROSION_STAGES["mature"], steps=1)


class SimulationStep(Protocol):
    """What the erosion stage (and later thermal or wind steps) needs from physics or a learned model."""

    name: str
    reads: tuple[str, ...]  # the fields ``delta`` and ``settled`` look at
    writes: tuple[str, ...]  # the fields whose change ``delta`` returns

    def supports(self, process: StreamPower, cell_size: float, horizon: int) -> bool:
        """Whether one call can jump ``horizon`` steps of ``process`` at this cell size."""
        ...

    def delta(self, fields: Fields, cell_size: float, process: StreamPower, horizon: int) -> Fields:
        """The change of each field in ``writes`` after ``horizon`` steps."""
        ...

    def settled(self, fields: Fields, cell_size: float, process: StreamPower, horizon: int,
                tile: int) -> np.ndarray:
        """[tile rows, tile cols] bool: True where the next ``horizon`` steps may be skipped."""
        ...


@dataclass(frozen=True)
class StreamPowerPhysics:
    """The physics itself behind the interface: any horizon, never skips."""

    name: str = "physics"
    reads: tuple[str, ...] = ("heights",)
    writes: tuple[str, ...] = ("heights",)

    def supports(self, process: StreamPower, cell_size: float, horizon: int) -> bool:
        return horizon >= 1

    def delta(self, fields: Fields, cell_size: float, process: StreamPower, horizon: int) -> Fields:
        z = np.asarray(fields["heights"], np.float64)
        return {"heights": erode(z, cell_size, replace(process, steps=horizon)) - z}

    def settled(self, fields: Fields, cell_size: float, process: StreamPower, horizon: int,
                tile: int) -> np.ndarray:
        rows, cols = tile_counts(fields["heights"].shape, tile)
        return np.zeros((rows, cols), bool)


def ladder_plan(total: int, horizons: tuple[int, ...]) -> tuple[list[int], int]:
    """``total`` steps as calls of the largest horizons that fit, and the steps left over for the physics
    (10 on the ladder 1, 2, 4, 8, 10 is [10], 0; 13 on the ladder 8, 10 is [10], 3)."""
    plan, left = [], total
    for k in sorted(horizons, reverse=True):
        while left >= k:
            plan.append(k)
            left -= k
    return plan, left


def tile_counts(shape: tuple[int, ...], tile: int) -> tuple[int, int]:
    return -(-shape[0] // tile), -(-shape[1] // tile)


@dataclass(frozen=True)
class Drainage:
    """A map's flow graph read out: upstream area (m²) and one implicit incision step on the fixed graph."""

    area: np.ndarray  # [H, W] m²
    incision: np.ndarray  # [H, W] height change (negative) of one stream-power step of length K


def drainage(heights: np.ndarray, cell_size: float, process: StreamPower, horizon: int,
             resolve_sinks: bool = True) -> Drainage:
    """Route the map (depressions to their spill when ``resolve_sinks``) and take one K-long implicit step."""
    rows, cols = heights.shape
    grid = fs.RasterGrid([rows, cols], [cell_size, cell_size], fs.NodeStatus.FIXED_VALUE)
    resolvers = [fs.SingleFlowRouter(), fs.MSTSinkResolver()] if resolve_sinks else [fs.SingleFlowRouter()]
    graph = fs.FlowGraph(grid, resolvers)
    z = np.ascontiguousarray(heights, dtype=np.float64)
    graph.update_routes(z)
    area = np.empty_like(z)
    graph.accumulate(area, 1.0)
    if horizon == 0:
        return Drainage(area, np.zeros_like(z))
    eroder = fs.SPLEroder(graph, k_coef=process.incision, area_exp=process.area_exponent, slope_exp=1.0,
                          tolerance=1e-5)
    return Drainage(area, -eroder.erode(z, area, float(horizon)))


def height_scale(heights: np.ndarray) -> float:
    """The map's height scale (standard deviation): both processes are linear in it for a fixed graph."""
    return float(max(np.std(heights), 1e-6))


def log_cells(area: np.ndarray, cell_size: float) -> np.ndarray:
    """Upstream area in cells, as log10: 0 on ridges, 4-5 on a 256² map's trunk rivers."""
    return np.log10(np.maximum(area / cell_size**2, 1.0))


def step_rate(heights: np.ndarray, cell_size: float, process: StreamPower) -> np.ndarray:
    """|change| (m) of one implicit step of the process on the map's current flow graph (plain routing).

    The explicit rate (K A^m S + D laplacian) overstates rough land several times at D dt / dx² = 1.7,
    where the implicit step saturates at the roughness itself; this is the step the physics takes.
    """
    z = np.asarray(heights, np.float64)
    return np.abs(implicit_change(z, drainage(z, cell_size, process, 1, resolve_sinks=False), process, 1, cell_size))


def implicit_change(z: np.ndarray, routed: Drainage, process: StreamPower, horizon: int,
                    cell_size: float) -> np.ndarray:
    """The change (m) of one K-long implicit step of both processes: stream power on the fixed flow graph
    (``routed.incision``, from ``drainage`` with the same horizon), then one backward-Euler hillslope step of K D."""
    return hillslope.held(z + routed.incision, horizon * process.diffusion, cell_size) - z


# The surrogate's input channels, in order (see ``surrogate_inputs``).
SURROGATE_CHANNELS = ("heights", "log_area", "implicit_step", "border")


def surrogate_inputs(heights: np.ndarray, cell_size: float, process: StreamPower,
                     horizon: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(inputs [4, H, W] float32, the implicit K-step's change in metres, scale s) for one K-jump.

    Heights and the implicit step are divided by the map's scale s (the process is linear in it), so one
    network serves any relief; the border row is marked because it is the base level the rivers cut to.
    """
    z = np.asarray(heights, np.float64)
    scale = height_scale(z)
    routed = drainage(z, cell_size, process, horizon)
    implicit = implicit_change(z, routed, process, horizon, cell_size)
    border = np.zeros(z.shape, np.float32)
    border[[0, -1], :] = border[:, [0, -1]] = 1.0
    inputs = np.stack([(z - z.mean()) / scale, log_cells(routed.area, cell_size) / 4.0,
                       implicit / scale, border]).astype(np.float32)
    return inputs, implicit, scale


Slices = tuple[slice, slice]


def windows(shape: tuple[int, ...], window: int, margin: int, multiple: int = 1):
    """Cover a map with overlapping windows: yields (outer, inner, core) slices.

    ``outer`` is the window in the map (at most ``window`` cells a side, clipped at the map's edge),
    ``core`` the cells it is responsible for (the map cut into equal cores) and ``inner`` where the
    core lies inside the window. A local operator run on each window with ``margin`` beyond its reach
    and pasted core by core gives the same map as one run on the whole (no seams).
    """
    rows, cols = shape[0], shape[1]
    if rows <= window and cols <= window:
        whole = (slice(0, rows), slice(0, cols))
        yield whole, whole, whole
        return
    core = max(multiple, window - 2 * margin)
    for r0 in range(0, rows, core):
        for c0 in range(0, cols, core):
            r1, c1 = min(r0 + core, rows), min(c0 + core, cols)
            outer = (slice(max(0, r0 - margin), min(rows, r1 + margin)),
                     slice(max(0, c0 - margin), min(cols, c1 + margin)))
            inner = (slice(r0 - outer[0].start, r1 - outer[0].start), slice(c0 - outer[1].start, c1 - outer[1].start))
            yield outer, inner, (slice(r0, r1), slice(c0, c1))
