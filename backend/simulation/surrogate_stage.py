"""The erosion stage run by physics, by a learned step, or gated: which engine does which tile.

* ``physics``: ``landscape.erode`` on the whole map, step by step.
* ``surrogate``: the learned step jumps the stage's steps in as few calls as its horizons allow
  (the mature stage's 10 steps are one call); any process or cell size it was not trained on runs as
  physics instead.
* ``gated``: per period (one jump of K steps) the learned step's gate marks settled tiles, which keep
  their heights; the others take the jump, and a trust map compares it with the same K made of shorter
  jumps (the mean of two compositions): the tiles where the two differ most (in metres), at most a share
  of the map (``fallback_share``) and none below the gate's tolerance, are doubtful and redone by physics
  on a window with a margin (its border held at the current heights), or by one run on the whole map when
  those windows would cover more cells than it, blended in across the tiles' edges.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace


import numpy as np
from scipy.ndimage import distance_transform_edt

from .landscape import ErosionCallback, StreamPower, erode
from .learned_steps import SimulationStep, height_scale, ladder_plan, tile_counts

# engine -> (label, what it does): the Simulate panel's Engine menu (hello_reply); "auto": SURROGATE_FROM_CELLS decides
ENGINE_NOTES: dict[str, tuple[str, str]] = {
    "auto": ("Auto", "The backend picks: physics, the learned surrogate on very large terrains (2048² and up)"),
    "physics": ("Physics", "Stream power and hillslope diffusion, step by step"),
    "surrogate": ("Surrogate", "The learned surrogate: many steps in one pass (30 m cells only)"),
    "gated": ("Gated", "Surrogate where it is sure, physics where it is not, settled land skipped"),
}
ENGINES = tuple(name for name in ENGINE_NOTES if name != "auto")
# auto: physics below (it is more faithful, reports/erosion_surrogate, and ~2 s for a mature 1024² stage),
# the surrogate from here up (a mature 2048² stage: 10.9 s of physics, 5.0 s of surrogate, benchmarks/results)
SURROGATE_FROM_CELLS = 2048 * 2048
PHYSICS_MARGIN = 64  # cells of context around a tile redone by physics
BLEND = 0.25  # physics and the jump meet in a linear ramp this many tiles wide each side of a doubtful tile's edge


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
              tile: int = 64, fallback_share: float | None = None) -> tuple[np.ndarray, StageLog]:
    """``heights`` after ``process.steps`` steps by ``engine`` (see the module's docstring), and its log."""
    if engine not in ENGINE_NOTES:
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
    config = getattr(learned, "config")
    share = fallback_share if fallback_share is not None else config.fallback_share
    done = 0
    for k in jumps:
        if engine == "surrogate":
            z = z + learned.delta({"heights": z}, cell_size, process, k)["heights"]
        else:
            z = gated_period(z, cell_size, process, k, learned, tile, share, config.gate.tolerance, log)
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


def reference_plans(k: int, horizons: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Two ways of making K of shorter jumps, whose mean result the trust map holds the K-jump against: the
    longest shorter jump and the rest in both orders or, where the two are equal (h, h), also (h/2, h, h/2);
    one where K splits only one way, none where it cannot split. Two compositions' errors partly cancel, so
    their mean ranks the K-jump's errors better than one (on the report's held-out maps the rank correlation
    with the true per-tile error rises from 0.50-0.74 to 0.59-0.87 at K = 4, 8, 10)."""
    split = split_horizon(k, horizons)
    if split is None:
        return []
    first, rest = split
    if first != rest:
        return [split, (rest, first)]
    if first % 2 == 0 and first // 2 in horizons:
        return [split, (first // 2, first, first // 2)]
    return [split]


def trust_reference(z: np.ndarray, cell_size: float, process: StreamPower, k: int,
                    learned: SimulationStep) -> np.ndarray:
    """Heights after K steps as the mean of ``reference_plans``' compositions of shorter jumps; where K cannot
    split into learned jumps (the ladder's shortest), the physics' own K steps, so the trust map there is the
    jump's own error. The shortest jump is never worth running gated (a short jump never pays, benchmarks/), but
    it is part of the longer ones' references (K = 10: 8 + 2 and 2 + 8). The implicit step of length K the jump
    starts from ranked a 2-step jump's tiles poorly (Spearman 0.36-0.52 with the true per-tile error on the
    report's held-out maps)."""
    plans = reference_plans(k, tuple(h for h in range(1, k) if learned.supports(process, cell_size, h)))
    if not plans:
        return erode(z, cell_size, replace(process, steps=k))
    results = []
    for plan in plans:
        h = z
        for part in plan:
            h = h + learned.delta({"heights": h}, cell_size, process, part)["heights"]
        results.append(h)
    return np.mean(results, axis=0)


def trust_map(z: np.ndarray, jump: np.ndarray, cell_size: float, process: StreamPower, k: int,
              learned: SimulationStep, tile: int) -> np.ndarray:
    """Per tile: RMS (m) of one K-jump minus ``trust_reference``.

    In metres, not over the tile's own change: the fallback is judged by the map's error of the change, which
    the tiles with the largest errors in metres carry (over the tile's change the rank correlation with the true
    per-tile error was 0.3-0.6 on the report's held-out maps, in metres 0.5-0.9).
    """
    return tile_rms(z + jump - trust_reference(z, cell_size, process, k, learned), tile)


def doubtful_tiles(trust: np.ndarray, settled: np.ndarray, floor: float, share: float) -> np.ndarray:
    """[tile rows, tile cols] bool: the unsettled tiles of largest ``trust`` above ``floor``, at most ``share``
    of all tiles (the physics' budget; ties broken by position)."""
    candidates = ~settled & (trust > floor)
    count = min(int(share * trust.size), int(candidates.sum()))
    ranked = np.argsort(-np.where(candidates, trust, -np.inf), axis=None, kind="stable")[:count]
    out = np.zeros(trust.shape, bool)
    out.flat[ranked] = True
    return out


def tile_slices(r: int, c: int, tile: int, shape: tuple[int, ...], margin: int) -> tuple[tuple[slice, slice], ...]:
    """(core in the map, window in the map, core in the window) of tile (r, c)."""
    core = (slice(r * tile, min((r + 1) * tile, shape[0])), slice(c * tile, min((c + 1) * tile, shape[1])))
    outer = tuple(slice(max(0, s.start - margin), min(n, s.stop + margin)) for s, n in zip(core, shape))
    inner = tuple(slice(s.start - o.start, s.stop - o.start) for s, o in zip(core, outer))
    return core, outer, inner


def physics_on_tiles(z: np.ndarray, out: np.ndarray, cell_size: float, process: StreamPower, k: int,
                     tiles: np.ndarray, tile: int) -> None:
    """Blend K physics steps into ``out`` over ``tiles``: weight 1 inside them, ramping linearly to 0 across
    their edges (BLEND x tile cells each side), so no step is left where physics meets the jump (they differ by
    tens of metres). The physics comes from a window with a margin per tile, or from one whole-map run when the
    windows would cover more cells than the map (cheaper, and exact)."""
    if not tiles.any():
        return
    band = max(1, int(BLEND * tile))
    mask = np.kron(tiles, np.ones((tile, tile), bool))[:z.shape[0], :z.shape[1]]
    weight = np.clip(0.5 + (distance_transform_edt(mask) - distance_transform_edt(~mask)) / (2 * band), 0.0, 1.0)
    cells = [(r, c, tile_slices(r, c, tile, z.shape, PHYSICS_MARGIN)[1]) for r, c in zip(*np.nonzero(tiles))]
    if sum((o[0].stop - o[0].start) * (o[1].stop - o[1].start) for _, _, o in cells) >= z.size:
        physics = erode(z, cell_size, replace(process, steps=k))
    else:
        physics = np.zeros_like(z)  # set wherever the weight is not 0: the tiles and their bands
        runs = [(r, c, outer, erode(z[outer], cell_size, replace(process, steps=k))) for r, c, outer in cells]
        for margin in (band, 0):  # every tile's band, then every core over the bands
            for r, c, outer, result in runs:
                near = tile_slices(r, c, tile, z.shape, margin)[1]
                physics[near] = result[tuple(slice(n.start - o.start, n.stop - o.start) for n, o in zip(near, outer))]
    out += weight * (physics - out)


def gated_period(z: np.ndarray, cell_size: float, process: StreamPower, k: int, learned: SimulationStep,
                 tile: int, share: float, tolerance: float, log: StageLog) -> np.ndarray:
    """One period of K steps: settled tiles kept, trusted tiles jumped, doubtful tiles redone by physics
    (``tolerance``: the gate's, x the map's scale, the least disagreement worth a physics run)."""
    settled = learned.settled({"heights": z}, cell_size, process, k, tile)
    jump = learned.delta({"heights": z}, cell_size, process, k)["heights"]
    trust = trust_map(z, jump, cell_size, process, k, learned, tile)
    doubtful = doubtful_tiles(trust, settled, tolerance * height_scale(z), share)
    out = z + jump
    for r, c in zip(*np.nonzero(settled)):
        core, _, _ = tile_slices(r, c, tile, z.shape, 0)
        out[core] = z[core]
    physics_on_tiles(z, out, cell_size, process, k, doubtful, tile)
    log.tiles += settled.size
    log.skipped += int(settled.sum())
    log.fallback += int(doubtful.sum())
    return out
