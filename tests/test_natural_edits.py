"""Brushes and curve guides that read as the land around them, driven as an artist would: the add-on's operators
in real Blender on learned terrain (the shipped models) at 512² over 4 km, against a real backend.

One Blender session (tests/blender_scenarios/natural.py) in the oldest and one in the newest Blender makes every
edit, each followed by undo; the tests here read what it saved. Besides exactness (outside the stroke nothing
changes) and undo, they check that the edited ground has the pit density and roughness (std of the Laplacian)
of the ground around it, within 1.3x either way (fewer pits allowed only for smoothing kinds and where the edit
left steeper ground than around), that it holds no more closed basins than the land around it (a stamped-on
bowl), and that a River curve's bed descends, lies below both banks and meets the ground where the curve ends.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from backend.editing.brushes import nearest_on_path, rounded
from backend.editing.curves import RIVER_DEPTH
from backend.simulation.flow import fill_depressions

from test_addon import BLENDERS, SCENARIOS, _blender_env, _results, addon_zip  # noqa: F401  (fixture)

N, SIZE_M = 512, 4000.0
PLAN = {
    "terrain": {"resolution": N, "size_m": SIZE_M, "height_m": 800.0, "seed": 5, "sea_level": 0.0},
    "stroke": [[250.0, 110.0, 1.0], [236.0, 256.0, 1.0], [262.0, 400.0, 1.0]], "radius": 40.0, "strength": 0.8,
    "selection": [256.0, 256.0, 60.0],
    "valley": [[420.0, 60.0], [385.0, 200.0], [405.0, 330.0], [375.0, 460.0]], "river_width": 20.0,
    "curve": [[110.0, 80.0], [90.0, 250.0], [120.0, 430.0]], "curve_width": 40.0,
}
BRUSHES = ("raise", "lower", "smooth", "flatten", "ridge", "valley", "erode", "regenerate", "style_paint")
RATIO = 1.3  # inside vs around: pit density and roughness
GENTLE_DEG = 10.0  # slopes under this are gentle: where pits lie
SMOOTHING = ("smooth", "flatten", "erode", "erode_selection")  # less relief is what they are for
FLAT_M = 1e-3  # a step under a millimetre between neighbours is dead flat
MAX_FLAT_RUN = 3  # cells
BASIN_M = 0.5  # a cell that a priority-flood fill raises by more than this lies in a closed basin
# closed-basin share within the stroke's radius at most BASIN_RATIO times that in the ring around it plus
# BASIN_SLACK: the land drains (0.2 % of the ring in basins before any edit), a stamped-on bowl does not (a lowered
# patch left 18 % of its cells in a basin, a carved valley 29 %); a raise may dam the land beside it (7 % in, 4 %
# around)
BASIN_RATIO, BASIN_SLACK = 3.0, 0.01


@pytest.fixture(scope="module", params=list(BLENDERS))
def session(request, addon_zip, backend, tmp_path_factory):  # noqa: F811
    """The artist's session in the oldest and in the newest Blender: (its output folder, its results)."""
    version, python = BLENDERS[request.param]
    if not Path(python).exists():
        pytest.fail(f"no Python for Blender {version}: {python} is missing (scripts/test.sh makes it)")
    out = tmp_path_factory.mktemp(f"natural-{request.param}")
    run = subprocess.run([python, str(SCENARIOS / "natural.py"), str(addon_zip), backend.address, str(out),
                          json.dumps(PLAN)], env=_blender_env(out), capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    results = _results(run.stdout)
    assert tuple(results["blender_version"][:2]) == version, f"ran in Blender {results['blender_version']}"
    return out, results


def load(out, name: str) -> np.ndarray:
    return np.load(out / f"{name}.npy").reshape(N, N).astype(np.float64)


def roughness(h: np.ndarray, where: np.ndarray) -> float:
    """Std of the 5-point Laplacian over the interior cells ``where``."""
    lap = h[:-2, 1:-1] + h[2:, 1:-1] + h[1:-1, :-2] + h[1:-1, 2:] - 4 * h[1:-1, 1:-1]
    return float(lap[where[1:-1, 1:-1]].std())


def pits(h: np.ndarray, where: np.ndarray) -> float:
    """Share of the cells ``where`` that are strict pits (below all 8 neighbours)."""
    r, c = np.nonzero(where[1:-1, 1:-1])
    lo, hi = max(r.min(), 0), r.max() + 3
    left, right = max(c.min(), 0), c.max() + 3
    sub = h[lo:hi, left:right]
    z = sub[1:-1, 1:-1]
    pit = np.ones_like(z, dtype=bool)
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            if dr or dc:
                pit &= z < sub[1 + dr:sub.shape[0] - 1 + dr, 1 + dc:sub.shape[1] - 1 + dc]
    mask = where[1:-1, 1:-1][lo:hi - 2, left:right - 2]
    return float(pit[mask].mean())


def basins(h: np.ndarray, where: np.ndarray) -> float:
    """Share of the cells ``where`` in closed basins: raised by more than BASIN_M when the grid's depressions are
    filled so that all of it drains to its edge (priority flood)."""
    return float(((fill_depressions(torch.from_numpy(h), 0.0).numpy() - h)[where] > BASIN_M).mean())


def flat_runs(h: np.ndarray, where: np.ndarray) -> int:
    """The longest run of neighbours (along rows or columns, inside ``where``) whose heights differ by < FLAT_M."""
    longest = 0
    for a, m in ((h, where), (h.T, where.T)):
        flat = (np.abs(np.diff(a, axis=1)) < FLAT_M) & m[:, 1:] & m[:, :-1]
        run = np.zeros(flat.shape[0], dtype=int)
        for j in range(flat.shape[1]):
            run = np.where(flat[:, j], run + 1, 0)
            longest = max(longest, int(run.max()))
    return longest


def stroke_distance(points: list[list[float]]) -> np.ndarray:
    d, _, _ = nearest_on_path(np.c_[np.array(points)[:, :2], np.zeros(len(points))], (0, 0, N, N))
    return d


def gentle(h: np.ndarray, where: np.ndarray) -> float:
    """Share of the cells ``where`` sloping less than GENTLE_DEG: the ground pits lie on."""
    gy, gx = np.gradient(h, SIZE_M / (N - 1))
    return float((np.degrees(np.arctan(np.hypot(gx, gy)))[where] < GENTLE_DEG).mean())


def compare(before: np.ndarray, after: np.ndarray, d: np.ndarray, radius: float) -> dict[str, float]:
    """Pit density, roughness and gentle share in the stroke's core (d < radius / 2) and in a ring around it
    (R..2R)."""
    inside, around = d < radius / 2, (d > radius) & (d < 2 * radius)
    return {"pits_in": pits(after, inside), "pits_around": pits(after, around),
            "basins_in": basins(after, d < radius), "basins_around": basins(after, around),
            "rough_in": roughness(after, inside), "rough_around": roughness(after, around),
            "gentle_in": gentle(after, inside), "gentle_around": gentle(after, around),
            "flat_run": flat_runs(after, inside), "flat_run_before": flat_runs(before, inside)}


def assert_like_around(stats: dict[str, float], one_pit: float, smoothing: bool = False) -> None:
    """As pitted as the ground around within RATIO (and one pit) either way, and as rough within RATIO either
    way. Fewer pits are allowed where the edit is meant to take relief away (a smoothing kind, which may also be
    smoother, not rougher) and where it left less gentle ground than around (a raise or ridge steepens its
    core): pits lie on gentle ground (on the generated terrain 3.5 % of cells under 10 degrees are pits, 0.01 %
    of those over 30), so steeper ground with fewer pits is the land the artist asked for, not a stamp."""
    assert stats["pits_in"] <= RATIO * stats["pits_around"] + one_pit, stats
    if not smoothing and stats["gentle_in"] >= stats["gentle_around"] / RATIO:
        assert stats["pits_in"] >= stats["pits_around"] / RATIO - one_pit, stats
    assert stats["rough_in"] <= RATIO * stats["rough_around"], stats
    assert smoothing or stats["rough_around"] <= RATIO * stats["rough_in"], stats
    assert stats["basins_in"] <= BASIN_RATIO * stats["basins_around"] + BASIN_SLACK, stats


@pytest.mark.parametrize("kind", BRUSHES + ("erode_selection",))
def test_brush_edits_read_as_the_land_around_them(session, kind):
    out, results = session
    before = load(out, "before")
    after, undone = load(out, f"after_{kind}"), load(out, f"undone_{kind}")
    np.testing.assert_array_equal(undone, before)
    if kind == "erode_selection":
        row, col, radius = PLAN["selection"]
        d = np.hypot(*np.meshgrid(np.arange(N) - row, np.arange(N) - col, indexing="ij"))
        d, radius = np.maximum(d - radius + 12, 0), 12.0  # distance in from the selection's blend band
        np.testing.assert_array_equal(after[d > radius], before[d > radius])
    else:
        d, radius = stroke_distance(PLAN["stroke"]), PLAN["radius"]
        np.testing.assert_array_equal(after[d > radius + 1], before[d > radius + 1])  # outside: exact
    stats = compare(before, after, d, radius)
    print(kind, json.dumps({k: round(v, 5) for k, v in stats.items()}), f"{results['latency_s'][kind]:.2f} s")
    assert np.abs(after - before)[d < radius / 2].mean() > 0.5, "the edit moved nothing"
    assert_like_around(stats, 1.0 / (d < radius / 2).sum(), smoothing=kind in SMOOTHING)
    if kind != "flatten":
        assert stats["flat_run"] <= max(MAX_FLAT_RUN, stats["flat_run_before"]), stats
    if kind == "valley":  # its stream (the lowest cells on its path rounded through corners, cell by cell) has no
        # pit: it falls from one divide (either end, or a col where the path crosses high ground) to both ends
        floor = along_path(after, rounded(np.array(PLAN["stroke"]), radius).tolist(), np.minimum)
        top = int(np.argmax(floor))
        climbs = max(np.diff(floor[:top + 1]).min(initial=0) * -1, np.diff(floor[top:]).max(initial=0))
        assert climbs <= 0, f"the valley's floor has a pit: it climbs {climbs:.2f} m away from its divide"


def along_path(h: np.ndarray, points: list[list[float]], reduce: np.ufunc) -> np.ndarray:
    """Per cell of arc length along the path: ``reduce`` (np.minimum, np.maximum) of the cells on it (d < 0.75)."""
    path = np.array(points)[:, :2]
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(path, axis=0), axis=1))])
    d, u, _ = nearest_on_path(np.c_[path, s / s[-1]], (0, 0, N, N))
    n = int(s[-1])
    on = d < 0.75
    out = np.full(n, np.inf if reduce is np.minimum else -np.inf)
    reduce.at(out, np.minimum((u[on] * n).astype(int), n - 1), h[on])
    return out


def _bed_and_banks(out, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Along the River curve, per cell of its length: the bed (the heights on the curve), the two banks (the
    highest ground at half the width either side) and the ground the river was drawn on (after the valley)."""
    points = np.array(PLAN["valley"])
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])
    d, u, side = nearest_on_path(np.c_[points, s / s[-1]], (0, 0, N, N))
    after, before = load(out, name), load(out, "after_valley_for_river")
    n = int(s[-1])
    samples = np.stack([np.interp(np.linspace(0, s[-1], n), s, points[:, k]) for k in range(2)], 1)
    bed = after[tuple(np.rint(samples).astype(int).T)]
    ground = before[tuple(np.rint(samples).astype(int).T)]
    half = PLAN["river_width"] / 2
    bin_of = np.minimum((u * n).astype(int), n - 1)
    banks = []
    for sign in (1, -1):
        ring = (np.abs(d - half) < 1.0) & (side == sign)
        top = np.full(n, np.nan)
        np.fmax.at(top, bin_of[ring], after[ring])
        banks.append(top)
    return bed, banks[0], banks[1], ground


def test_river_bed_descends_below_its_banks_to_the_ground_at_its_ends(session):
    out, results = session
    before = load(out, "before")
    np.testing.assert_array_equal(load(out, "undone_river"), before)
    bed, left, right, ground = _bed_and_banks(out, "after_river")
    if bed[0] < bed[-1]:
        bed, left, right, ground = (a[::-1] for a in (bed, left, right, ground))
    steps = np.diff(bed)
    depth = 0.6 * RIVER_DEPTH * PLAN["river_width"] * SIZE_M / (N - 1)  # the river's depth at strength 0.6
    print("river", json.dumps({"design_depth": depth, "rise_mean": float((bed - ground).mean()),
                               "rise_max": float((bed - ground).max()),
                               "max_step_up": float(steps.max()), "ends_moved": (bed - ground)[[0, -1]].tolist(),
                               "above_left": int(np.nansum(bed >= left)), "above_right": int(np.nansum(bed >= right)),
                               "longest_flat": flat_runs(bed[None], np.ones((1, len(bed)), bool))}))
    assert (steps <= 0).all(), f"the bed climbs {steps.max():.2f} m"
    end = int(PLAN["river_width"])
    interior = slice(end, -end)  # within a width of its ends the river comes up to meet the ground
    assert (bed[interior] < np.fmin(left, right)[interior]).all() or \
        np.isnan(np.fmin(left, right)[interior]).all(), "the bed is not below its banks"
    assert np.abs(bed - ground)[[0, -1]].max() < 1.0, "the river does not end at the ground where the curve ends"
    assert (bed - ground).mean() < -depth / 2, "the river does not cut into the ground"
    assert (bed - ground).max() < depth, "the river fills a dip deeper than itself into a causeway"
    # under the highest line that falls all the way under the ground (as much as crossing a divide needs, no more)
    sunk = (np.minimum.accumulate(ground) - bed)[interior].mean()
    assert sunk < 1.5 * depth, f"the river runs {sunk:.1f} m under what falling needs for a {depth:.1f} m design depth"
    assert flat_runs(bed[None], np.ones((1, len(bed)), bool)) <= MAX_FLAT_RUN


@pytest.mark.parametrize("kind", ["ridge_curve", "cliff_curve", "valley_for_river"])
def test_curves_read_as_the_land_around_them(session, kind):
    out, results = session
    before, after = load(out, "before"), load(out, f"after_{kind}")
    points = PLAN["valley"] if kind == "valley_for_river" else PLAN["curve"]
    reach = PLAN["river_width"] if kind == "valley_for_river" else PLAN["curve_width"] / 2
    d = stroke_distance([[r, c, 1.0] for r, c in points])
    np.testing.assert_array_equal(after[d > reach + 1], before[d > reach + 1])
    if kind != "valley_for_river":
        np.testing.assert_array_equal(load(out, f"undone_{kind}"), before)
    stats = compare(before, after, d, reach)
    print(kind, json.dumps({k: round(v, 5) for k, v in stats.items()}), f"{results['latency_s'][kind]:.2f} s")
    assert_like_around(stats, 1.0 / (d < reach / 2).sum())
    assert stats["flat_run"] <= max(MAX_FLAT_RUN, stats["flat_run_before"]), stats
