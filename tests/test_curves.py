"""Curve guides: profiles extracted from corpus maps, the shipped 1D profile model and its constrained
sampling, and the ``curve`` job over real sockets against a backend serving tiny models trained by the
real scripts (ridge up, river down and downhill, cliff a step, nothing outside the band touched)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch

from backend.data.datasets import load_maps
from backend.data.elevation_profiles import KINDS, ProfileDataset, ProfileSettings, extract_profiles
from backend.diffusion.guidance import nonincreasing
from backend.editing import seam_ratio
from backend.editing.brushes import RELIEF_PER_STRENGTH, nearest_on_path
from backend.editing.curves import (GORGE_WALL_DEG, RIFFLE, RIVER_DEPTH, Curve, band_reach, banks_under, bed_between,
                                   channel_cells, curve_target, river_bed)
from backend.generators.curve_profiles import sample_profiles
from backend.models.inference import read_metadata
from backend.models.profile import ProfileModel
from backend.models.shipped import MODELS_DIR
from backend.models.shipped import PROFILE_FILE
from backend.world.store import WorldStore
from protocol.client import BackendError, Client

from conftest import ROOT, terrain_models_only
from test_brushes import CELL, RES, brush_client, terrain  # noqa: F401  (fixtures: the same client and terrain)

CURVE = [[64.0, 20.0], [58.0, 64.0], [70.0, 108.0]]  # west to east across the middle
WIDTH, STRENGTH = 16.0, 0.8


# -- data --------------------------------------------------------------------------------------------

def test_profiles_from_corpus_maps(tiny_models):
    maps = load_maps([tiny_models.parent / "corpus"], "train")
    profiles = extract_profiles(maps, ProfileSettings(length=32, min_cells=12))
    counts = {k: len(profiles.of_kind(k)) for k in KINDS}
    assert counts["river"] > 5 and counts["ridge"] > 5, counts
    assert profiles.heights.shape == (len(profiles), 32) and profiles.cells.shape == (len(profiles), 32, 2)
    rivers = profiles.heights[profiles.of_kind("river")].astype(np.float64)
    assert (np.diff(rivers, axis=1) <= 0).all()  # water surfaces never rise downstream
    assert ((profiles.cells >= 0) & (profiles.cells <= maps.heights.shape[-1] - 1)).all()
    size = maps.heights.shape[-1]
    assert (profiles.extent_m == (size - 1) * maps.cell_size).all() and (profiles.length_m > 0).all()
    dataset = ProfileDataset(profiles)
    x, cond = dataset[0]
    assert x.shape == (1, 32) and x[0, 0] == 0 and x[0, -1] == 0  # ends are 0 by construction
    h = profiles.heights[dataset.items[0][0]]
    assert cond.sliders[0] == pytest.approx(float(h[0] - h[-1]) / float(profiles.relief_m[dataset.items[0][0]]))
    for kind in ("river", "ridge"):  # per-kind units give every kind's deviations the std EDM assumes
        assert float(dataset.x[profiles.of_kind(kind)].std()) == pytest.approx(0.5, rel=1e-3)
    flipped = [i for i, (p, flip) in enumerate(dataset.items) if flip]
    assert flipped and all(KINDS[profiles.kind[dataset.items[i][0]]] != "river" for i in flipped)


def test_nonincreasing_is_the_least_squares_monotone_fit():
    y = torch.randn(40, 48, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    f = nonincreasing(y)
    assert (f.diff(dim=-1) <= 1e-12).all()
    np.testing.assert_allclose(nonincreasing(f), f, atol=1e-12)  # a monotone sequence is its own fit
    # optimality: the residual is orthogonal to the fit and sums to 0 on every block of equal values
    np.testing.assert_allclose(((y - f) * f).sum(-1), 0, atol=1e-9)
    np.testing.assert_allclose((y - f).sum(-1), 0, atol=1e-9)
    worse = f + 0.01 * torch.linspace(1, 0, 48, dtype=torch.float64)  # another monotone sequence
    assert (((y - f) ** 2).sum(-1) < ((y - worse) ** 2).sum(-1)).all()


# -- the shipped model --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def shipped() -> ProfileModel:
    return ProfileModel.load(MODELS_DIR / PROFILE_FILE)


def test_shipped_profile_model_has_the_documented_config():
    meta = read_metadata(MODELS_DIR / PROFILE_FILE)
    documented = json.loads((ROOT / "configs" / "profile_1d.json").read_text())
    for key, value in documented["unet"].items():
        got = meta["denoiser"]["unet"][key]
        assert (list(got) if isinstance(got, (list, tuple)) else got) == value, key
    assert meta["denoiser"]["unet"]["dims"] == 1 and meta["denoiser"]["unet"]["n_styles"] == len(KINDS)
    config = meta["config"]
    assert config["kind"] == "profile" and config["profile_kinds"] == list(KINDS)
    assert all(config["extraction"][k] == v for k, v in documented["profile"].items())
    assert config["run"]["steps_done"] == documented["train"]["steps"]
    assert all(n > 100 for n in config["profiles_per_kind"].values()), config["profiles_per_kind"]
    assert (MODELS_DIR / PROFILE_FILE).stat().st_size < 10e6


def _sample(model: ProfileModel, kind: str, seed: int, pinned: np.ndarray | None = None, n: int = 3) -> np.ndarray:
    ends = np.array([[300.0, 120.0], [100.0, 250.0], [200.0, 200.0]])[:n]
    return sample_profiles(model, kind, ends, np.full(n, 1500.0), np.full(n, 800.0), np.full(n, 7650.0), seed,
                           pinned_m=pinned)


@pytest.mark.parametrize("kind", KINDS)
def test_shipped_profiles_keep_their_pins_and_their_seed(shipped, kind):
    pinned = np.full((3, shipped.length), np.nan)
    pinned[0, 20] = 250.0  # on the way down from 300 to 120, so a river can honour it
    a, b, c = _sample(shipped, kind, 3, pinned), _sample(shipped, kind, 3, pinned), _sample(shipped, kind, 4, pinned)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).mean() > 0.1  # metres: another seed, another profile
    np.testing.assert_array_equal(a[:, [0, -1]], [[300.0, 120.0], [100.0, 250.0], [200.0, 200.0]])  # exact
    assert a[0, 20] == 250.0
    assert np.isfinite(a).all() and np.abs(a).max() < 1000


def test_shipped_rivers_run_downhill_from_their_higher_end(shipped):
    rng = np.random.default_rng(0)
    ends = rng.uniform(0, 400, (64, 2))
    z = sample_profiles(shipped, "river", ends, rng.uniform(300, 5000, 64), np.full(64, 800.0),
                        np.full(64, 7650.0), seed=1)
    steps = np.diff(z, axis=1) * np.where(ends[:, :1] >= ends[:, 1:], 1, -1)  # downstream steps
    assert (steps <= 0).all()
    np.testing.assert_array_equal(z[:, [0, -1]], ends)
    pinned = np.full((1, shipped.length), np.nan)
    pinned[0, 10] = 500.0  # above the higher end: no river can pass there
    with pytest.raises(ValueError, match="descend"):
        _sample(shipped, "river", 0, pinned, n=1)


# -- the curve job over real sockets (a tiny-model backend; terrain: alpine, 3.8 km, 400 m, seed 2) -------

def shape(client: Client, heights: np.ndarray, kind: str, curve=CURVE, **params):
    params = {"kind": kind, "curve": curve, "width": WIDTH, "strength": STRENGTH, "cell_size": CELL,
              "style": "alpine", "seed": 1, **params}
    job = client.submit("curve", params, target="pytest-curve", arrays={"heights": heights})
    return client.wait_result(job, timeout=120)


def curve_frame(window: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per window cell: distance to CURVE (cells), position along it (0..1), side (+1 left)."""
    points = np.array(CURVE)
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])
    return nearest_on_path(np.c_[points, s / s[-1]], tuple(window))


def test_river_along_a_valley_side_cuts_under_its_lower_bank():
    """A river drawn along the rim of a valley 40 m deep, a band's half width to its left: its bed lies under
    that bank by its depth less a riffle (not only under the ground on the curve), meeting the ground at its
    ends."""
    heights = np.full((64, 200), 100.0)
    heights[:17] = 60.0  # rows 0-16: the valley floor; the curve runs along row 24, its left bank at row 16
    heights[17:21] = np.linspace(60.0, 100.0, 6)[1:-1, None]  # the valley's side
    curve = Curve("river", np.array([[24.0, 10.0], [24.0, 190.0]]), 16.0, 1.0)
    n = 128
    banks = banks_under(heights, curve, n)
    np.testing.assert_allclose(banks, 60.0)
    ground = np.linspace(100.0, 20.0, n)  # its mouth far below the valley floor: it can cut under the bank
    bed = river_bed(ground.copy(), ground, banks, curve, 10.0)  # a profile on the ground: the bank is the limit
    depth = RIVER_DEPTH * curve.width * 10.0
    np.testing.assert_allclose(bed[[0, -1]], ground[[0, -1]])
    inside = slice(int(n * curve.width / 180) + 1, -int(n * curve.width / 180) - 1)  # beyond a width of its ends
    above = np.zeros(n, dtype=bool)
    above[inside] = ground[inside] > 60.0  # where the bank, not the ground on the curve, is what holds the water
    assert above.sum() > n / 3 and (bed[above] <= 60.0 - (1 - RIFFLE) * depth + 1e-9).all()  # a riffle shallower
    assert (np.diff(bed) < 0).all()


def test_river_down_a_steep_slope_has_no_bank_under_its_bed():
    """A river straight down a slope falling 2 m a cell: beside its bed the banks never lie under the bed (the lowest
    of the banks of the curve's points around took the bed of those downstream: up to 9 m under it at the bed's
    edge on the README's river, a kerb that drew blocky steps), and they still never rise above the ground."""
    cell = 8.0
    rows, cols = np.mgrid[0:64, 0:200].astype(np.float64)
    heights = 500.0 - 2.0 * cols + 3.0 * np.sin(rows / 5.0)  # falling east, a little relief across
    curve = Curve("river", np.array([[32.0, 10.0], [32.0, 190.0]]), 16.0, 1.0)
    n = 128
    ground = ndi.map_coordinates(heights, curve.samples(n).T, order=1)
    profile = river_bed(ground.copy(), ground, banks_under(heights, curve, n), curve, cell)
    reach = band_reach(curve, profile, ground, cell)
    target, weight, _ = curve_target(curve, (0, 0, *heights.shape), heights, profile, ground, 0.0, reach)
    s = curve.arc()
    d, u, _ = nearest_on_path(np.c_[curve.points, s / s[-1]], (0, 0, *heights.shape))
    bed_here = bed_between(profile, u)
    banks = (weight > 0) & (d > 0)
    over = (target - np.minimum(bed_here, heights))[banks]  # over the bed, or over the ground where that is lower
    print("steep river: lowest bank over the bed beside it", round(float(over.min()), 3), "m")
    assert (over >= -1e-9).all()
    assert (target <= heights + 1e-9)[banks & (bed_here <= heights)].all()


def test_river_bed_between_profile_samples_keeps_falling_with_a_smooth_slope():
    """Between the profile's samples (a few cells apart on a long curve) the pinned bed keeps falling and its slope
    changes smoothly: linear between them, the slope changed in steps and each step drew a rectangle of one shade
    in the hillshade (the README river's east end)."""
    profile = np.array([100.0, 90.0, 88.0, 70.0, 69.5, 60.0])
    u = np.linspace(0.0, 1.0, 2001)
    bed = bed_between(profile, u)
    np.testing.assert_allclose(bed[::400], profile)  # through the samples
    assert (np.diff(bed) <= 0).all()
    kinks = lambda z: np.abs(np.diff(np.diff(z))).max()  # noqa: E731  largest change of slope between neighbours
    linear = np.interp(u, np.linspace(0.0, 1.0, len(profile)), profile)
    assert kinks(bed) < 0.05 * kinks(linear), (kinks(bed), kinks(linear))


def test_river_through_a_spur_cuts_a_gorge_not_a_slot():
    """A river drawn (bending) across a spur 200 m higher than its two ends cuts through it with banks no steeper
    than GORGE_WALL_DEG (at the artist's width its walls stood at 75-80 degrees, a slot; taken from the nearest point
    of a band wider than the bend, its banks had hatched steps inside the bend), never raises the ground beside its
    bed, and keeps the artist's band where it runs on the ground."""
    cell = 10.0
    rows, cols = np.mgrid[0:160, 0:240].astype(np.float64)
    heights = 100.0 + 200.0 * np.exp(-(((cols - 120.0) / 25.0) ** 2))  # a spur running north-south
    curve = Curve("river", np.array([[90.0, 10.0], [70.0, 80.0], [80.0, 120.0], [70.0, 160.0], [90.0, 230.0]]),
                  16.0, 1.0)
    n = 128
    ground = ndi.map_coordinates(heights, curve.samples(n).T, order=1)
    profile = river_bed(ground.copy(), ground, banks_under(heights, curve, n), curve, cell)
    reach = band_reach(curve, profile, ground, cell)
    window = (0, 0, *heights.shape)
    target, weight, _ = curve_target(curve, window, heights, profile, ground, 0.0, reach)
    slope = np.degrees(np.arctan(np.hypot(*np.gradient(target, cell))))
    cut = weight > 0
    print("gorge: band up to", round(float(reach.max()), 1), "cells, steepest bank", round(float(slope[cut].max()), 1))
    assert reach.max() > 4 * curve.reach and reach.min() == curve.reach
    assert slope[cut].max() < GORGE_WALL_DEG + 3.0
    assert (target <= heights + 1e-9)[ndi.distance_transform_edt(weight < 1) > 4].all()  # never up beside the bed
    assert (target[weight == 0] == heights[weight == 0]).all()


@pytest.mark.parametrize("kind", KINDS)
def test_curve_shapes_its_band_and_nothing_else(brush_client, terrain, kind):
    result = shape(brush_client, terrain, kind)
    r0, c0, r1, c1 = window = result.content["meta"]["window"]
    after, weight, profile = (result.arrays[k] for k in ("heights", "weight", "profile"))
    before = terrain[r0:r1, c0:c1]
    assert after.shape == before.shape == weight.shape and after.dtype == np.float32
    np.testing.assert_array_equal(after[weight == 0], before[weight == 0])  # outside the band: bit for bit
    assert (weight == 0).any() and (weight > 0.5).any()
    offset = STRENGTH * RELIEF_PER_STRENGTH * float(np.ptp(terrain))
    ground = ndi.map_coordinates(terrain.astype(np.float64), np.array(CURVE)[[0, -1]].T, order=1)
    sign = {"ridge": 1.0, "river": 0.0, "cliff": 0.5}[kind]  # a river ends on the ground where its curve ends
    np.testing.assert_allclose(profile[[0, -1]], ground + sign * offset, atol=1e-3)  # the pinned ends
    d, u, side = curve_frame(window)
    on = d < 1
    # The tiny test models (30 steps on two maps a style) reach about 0.35-0.4 of a ridge's or cliff's offset on the
    # terrain they make; the shipped models are held to the look in test_natural_edits.
    if kind == "ridge":
        assert after[on].mean() > before[on].mean() + 0.3 * offset
    elif kind == "river":
        depth = STRENGTH * RIVER_DEPTH * WIDTH * CELL
        # Between its pinned ends a river falls all the way, so it cuts into every stretch of ground above its
        # higher end (no causeway over a hill); a hollow deeper than its lower end it can only cross filled.
        high = on & (before > profile.max() + depth)
        assert not high.any() or after[high].mean() < before[high].mean() - depth
        assert after[on].max() < profile.max() + 0.1 * depth  # never a causeway above its higher end
        bed = d < channel_cells(WIDTH / 2)  # the channel: exactly the profile there
        order = np.argsort(u[bed], kind="stable")
        downstream = after[bed][order] * (1 if profile[0] >= profile[-1] else -1)
        assert (np.diff(downstream) <= 0).all()  # the bed runs downhill along the curve
    else:  # a step: the left side rises against the right, at least halfway from the ground's to the cliff's
        left, right = (d > 2) & (d < WIDTH / 4) & (side > 0), (d > 2) & (d < WIDTH / 4) & (side < 0)
        step = lambda h: float(h[left].mean() - h[right].mean())  # noqa: E731
        assert step(after) - step(before) > 0.3 * (offset - step(before))
    assert seam_ratio(after, weight) < 2.5


def test_flipped_cliff_raises_the_right_side(brush_client, terrain):
    result = shape(brush_client, terrain, "cliff", flip=True)
    r0, c0, r1, c1 = window = result.content["meta"]["window"]
    d, _, side = curve_frame(window)
    band = (d > 2) & (d < WIDTH / 4)
    step = lambda h: float(h[band & (side < 0)].mean() - h[band & (side > 0)].mean())  # noqa: E731
    offset = STRENGTH * RELIEF_PER_STRENGTH * float(np.ptp(terrain))
    before, after = step(terrain[r0:r1, c0:c1]), step(result.arrays["heights"])
    assert after - before > 0.3 * (offset - before)  # the cliff rises towards one offset whatever step was there


def test_same_curve_same_result_other_seed_other_profile(brush_client, terrain):
    a, b = shape(brush_client, terrain, "ridge", seed=5), shape(brush_client, terrain, "ridge", seed=5)
    c = shape(brush_client, terrain, "ridge", seed=6)
    for key in ("heights", "profile"):
        np.testing.assert_array_equal(a.arrays[key], b.arrays[key])
    assert np.abs(a.arrays["profile"] - c.arrays["profile"]).max() > 0.1


def test_committed_curve_goes_to_the_world_log(brush_client, terrain, tmp_path):
    world = tmp_path / "world"
    result = shape(brush_client, terrain, "river", world=str(world))
    (edit,) = WorldStore.open(world).edits()
    assert edit.kind == "river" and list(edit.window) == result.content["meta"]["window"]
    assert edit.params["curve"] == CURVE and edit.params["width"] == WIDTH
    np.testing.assert_array_equal(WorldStore.open(world).edit_deltas(edit)["after"], result.arrays["heights"])


@pytest.mark.parametrize("change,field", [
    ({"kind": "canal"}, "kind"),
    ({"curve": [[5.0, 5.0]]}, "curve"),
    ({"curve": [[5.0, 5.0, 1.0], [6.0, 9.0, 1.0]]}, "curve[0]"),
    ({"curve": [[500.0, 3.0], [5.0, 5.0]]}, "row"),
    ({"curve": [[5.0, 5.0], [5.0, 6.0]]}, "long"),
    ({"width": 0.5}, "width"),
    ({"strength": 1.5}, "strength"),
    ({"flip": "yes"}, "flip"),
    ({"cell_size": -1.0}, "cell_size"),
    ({"steps": 0}, "steps"),
    ({"style": "nowhere"}, "style"),
    ({"radius": 3.0}, "radius"),
])
def test_bad_curve_params_are_refused(brush_client, terrain, change, field):
    params = {"kind": "ridge", "curve": CURVE, "width": WIDTH, "cell_size": CELL, **change}
    with pytest.raises(BackendError) as err:
        brush_client.submit("curve", params, target="pytest-curve", arrays={"heights": terrain})
    assert err.value.code == "bad_params" and field in str(err.value)


def test_curve_without_heights_or_profile_model_is_refused(brush_client, private_backend, tiny_models, tmp_path):
    params = {"kind": "river", "curve": CURVE, "width": WIDTH, "cell_size": CELL}
    with pytest.raises(BackendError) as err:
        brush_client.submit("curve", params)
    assert err.value.code == "bad_params" and "heights" in str(err.value)
    models = terrain_models_only(tmp_path / "models", tiny_models)  # without the profile model
    client = Client(private_backend("--models-dir", str(models)).address)
    try:
        with pytest.raises(BackendError) as err:
            client.submit("curve", params, arrays={"heights": np.zeros((RES, RES), np.float32)})
        assert err.value.code == "bad_params" and "profile" in str(err.value)
    finally:
        client.close()


def test_river_bed_stays_within_two_depths_of_an_evenly_falling_floor():
    """A profile far under the ground (the profile model's concave long profile) is held within one depth of the
    design bed: the bed lies one to two depths under a floor that falls evenly, not in a canyon."""
    heights = np.full((64, 200), 100.0)
    curve = Curve("river", np.array([[32.0, 10.0], [32.0, 190.0]]), 16.0, 1.0)
    n = 128
    ground = np.linspace(100.0, 60.0, n)
    profile = ground - 80.0 * np.sin(np.linspace(0.0, np.pi, n))  # up to 80 m under the floor
    bed = river_bed(profile, ground, banks_under(heights, curve, n), curve, 10.0)
    depth = RIVER_DEPTH * curve.width * 10.0
    np.testing.assert_allclose(bed[[0, -1]], ground[[0, -1]])
    assert (ground - bed).max() <= 2 * depth + 1e-9 and (np.diff(bed) < 0).all()
