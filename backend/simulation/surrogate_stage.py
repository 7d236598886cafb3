"""The erosion stage run by physics, by a learned step, or gated: which engine does which tile.

* ``physics``: ``landscape.erode`` on the whole map, step by step.
* ``surrogate``: the learned step jumps the stage's steps in as few calls as its horizons allow
  (the mature stage's 10 steps are one call); any process or cell size it was not trained on runs as
  physics instead.
* ``gated``: per period (one jump of K steps) the learned step's gate marks settled tiles, which keep
  their heights; the others take the jump, and a trust map compares it with the same K made of two
  shorter jumps: tiles where the two disagree by more than the tolerance (relative to the change) are
  doubtful and redone by physics on a window with a margin (its border held at the current heights),
  pasted back core by core.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace


import numpy as np

from .landscape import ErosionCallback, StreamPower, erode
from .learned_steps import SimulationStep, ladder_plan, tile_counts

ENGINES = ("physics", "surrogate", "gated")  # and "auto": SURROGATE_FROM_CELLS decides
# auto: physics below (it is more faithful, reports/erosion_surrogate, and ~2 s for a mature 1024² stage),
# the surrogate from here up (a mature 2048² stage: 10.9 s of physics, 5.0 s of surrogate, benchmarks/results)
SURROGATE_FROM_CELLS = 2048 * 2048
PHYSICS_MARGIN = 64  # cells of context around a tile redone by physics


@dataclass
class StageLog:
    """What one run did, for reports and the Simulate panel: tile-periods skipped and sent to physics."""

    engine: str
    calls: list[int] = field(default_factory=list)  # the horizon of each call
    tiles: int = 0  # tile-periods in all
    skipped: int = 0  # tile-periods the gate skipped
    fallback: int = 0  # tile-periods redone by physics


def run_stage(heights: np.ndarray, cell_size: float, process: StreamPower, engine: str,
              learned: SimulationStep | None = None, on_step: ErosionCallback | None = None,
              tile: int = 64, trust_tolerance: float | None = None) -> tuple[np.ndarray, StageLog]:
    """``heights`` after ``process.steps`` steps by ``engine`` (see the module's docstring), and its log."""
    if engine not in ("auto", *ENGINES):
        raise ValueError(f"erosion engine must be auto or one of {ENGINES}, got {engine!r}")
    z = np.asarray(heights, np.float64)
    if engine == "auto":
        engine = "surrogate" if z.size >= SURROGATE_FROM_CELLS else "physics"
    horizons = getattr(learned, "horizons", ())
    usable = (engine != "physics" and learned is not None and
              all(learned.supports(process, cell_size, k) for k in horizons))
    jumps, rest = ladder_plan(process.steps, horizons) if usable else ([], process.steps)
    if not jumps:
        return erode(z, cell_size, process, on_step), StageLog("physics", [1] * process.steps)
    log = StageLog(engine)
    tolerance = trust_tolerance if trust_tolerance is not None else getattr(learned, "config").trust_tolerance
    done = 0
    for k in jumps:
        if engine == "surrogate":
            z = z + learned.delta({"heights": z}, cell_size, process, k)["heights"]
        else:
            z = gated_period(z, cell_size, process, k, learned, tile, tolerance, log)
        done += k
        log.calls.append(k)
        if on_step is not None:
            on_step(done, process.steps, z)
    if rest:  # steps no shipped horizon covers: physics, step by step
        z = erode(z, cell_size, replace(process, steps=rest),
                  None if on_step is None else lambda i, _, h: on_step(done + i, process.steps, h))
        log.calls.extend([1] * rest)
    return z, log


def split_horizon(k: int, horizons: tuple[int, ...]) -> tuple[int, int] | None:
    """K as two shorter jumps on the ladder (the longest first), or None when K cannot be split."""
    shorter = [h for h in horizons if h < k and (k - h) in horizons]
    if not shorter:
        return None
    first = max(shorter)
    return first, k - first


def tile_rms(field_: np.ndarray, tile: int) -> np.ndarray:
    """[tile rows, tile cols] root mean square of ``field_`` per tile."""
    rows, cols = tile_counts(field_.shape, tile)
    out = np.empty((rows, cols))
    for r in range(rows):
        for c in range(cols):
            out[r, c] = np.sqrt(np.mean(field_[r * tile:(r + 1) * tile, c * tile:(c + 1) * tile] ** 2))
    return out


def trust_map(z: np.ndarray, jump: np.ndarray, cell_size: float, process: StreamPower, k: int,
              learned: SimulationStep, tile: int) -> np.ndarray:
    """Per tile: |one K-jump - two shorter jumps| / |the jump| (RMS over the tile); 0 where K cannot split."""
    split = split_horizon(k, tuple(h for h in range(1, k) if learned.supports(process, cell_size, h)))
    if split is None:
        return np.zeros(tile_counts(z.shape, tile))
    first = learned.delta({"heights": z}, cell_size, process, split[0])["heights"]
    second = learned.delta({"heights": z + first}, cell_size, process, split[1])["heights"]
    floor = 1e-3 * float(np.std(z)) + 1e-9
    return tile_rms(jump - first - second, tile) / (tile_rms(jump, tile) + floor)


def tile_slices(r: int, c: int, tile: int, shape: tuple[int, ...], margin: int) -> tuple[tuple[slice, slice], ...]:
    """(core in the map, window in the map, core in the window) of tile (r, c)."""
    core = (slice(r * tile, min((r + 1) * tile, shape[0])), slice(c * tile, min((c + 1) * tile, shape[1])))
    outer = tuple(slice(max(0, s.start - margin), min(n, s.stop + margin)) for s, n in zip(core, shape))
    inner = tuple(slice(s.start - o.start, s.stop - o.start) for s, o in zip(core, outer))
    return core, outer, inner


def gated_period(z: np.ndarray, cell_size: float, process: StreamPower, k: int, learned: SimulationStep,
                 tile: int, tolerance: float, log: StageLog) -> np.ndarray:
    """One period of K steps: settled tiles kept, trusted tiles jumped, doubtful tiles redone by physics."""
    settled = learned.settled({"heights": z}, cell_size, process, k, tile)
    jump = learned.delta({"heights": z}, cell_size, process, k)["heights"]
    doubtful = (trust_map(z, jump, cell_size, process, k, learned, tile) > tolerance) & ~settled
    out = z + jump
    for r, c in zip(*np.nonzero(settled)):
        core, _, _ = tile_slices(r, c, tile, z.shape, 0)
        out[core] = z[core]
    for r, c in zip(*np.nonzero(doubtful)):
        core, outer, inner = tile_slices(r, c, tile, z.shape, PHYSICS_MARGIN)
        out[core] = erode(z[outer], cell_size, replace(process, steps=k))[inner]
    log.tiles += settled.size
    log.skipped += int(settled.sum())
    log.fallback += int(doubtful.sum())
    return out


