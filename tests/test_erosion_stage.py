"""The erosion stage after the diffusion cascade: stream power and hillslope diffusion (fastscapelib)."""

from __future__ import annotations


import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from backend.generators import DiffusionGenerator, GenerateRequest
from backend.metrics.realism import grid_alignment, pit_density
from backend.simulation.landscape import (EROSION_STAGES, MULTIPLE_FLOW, NEAR_STEEPEST_FLOW, SINGLE_FLOW, StreamPower,
                                         erode)


def lumpy_slope(size: int = 96, seed: int = 0) -> np.ndarray:
    """A tilted plane under 60 m lumps: a pit in nearly every lump, like the models' raw texture."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:size, 0:size]
    return 2.0 * rows + 60.0 * rng.random((size, size))


def test_stage_drains_pits_keeps_the_border_and_is_deterministic():
    z = lumpy_slope()
    params = EROSION_STAGES["light"]
    seen: list[tuple[int, int]] = []
    a = erode(z, 30.0, params, lambda step, total, heights: seen.append((step, total)))
    b = erode(z, 30.0, params)
    np.testing.assert_array_equal(a, b)
    assert seen == [(i, params.steps) for i in range(1, params.steps + 1)]
    assert np.isfinite(a).all()
    corners = np.s_[::z.shape[0] - 1, ::z.shape[1] - 1]
    np.testing.assert_array_equal(a[corners], z[corners])  # the border is the base level: corners kept,
    np.testing.assert_allclose(a[0].mean(), z[0].mean(), atol=5.0)  # the rest relaxed along the border
    assert np.abs(np.diff(a[0])).mean() < 0.5 * np.abs(np.diff(z[0])).mean()
    assert pit_density(z) > 0.05 and pit_density(a) < pit_density(z) / 5


def test_reused_engines_carry_nothing_from_one_map_to_the_next():
    """The grid, graphs and eroders are kept per shape: a map erodes the same before and after others."""
    first = erode(lumpy_slope(80, seed=2), 30.0, EROSION_STAGES["light"])
    erode(lumpy_slope(80, seed=3), 30.0, EROSION_STAGES["mature"])
    erode(lumpy_slope(80, seed=4) * 2.0, 30.0, EROSION_STAGES["light"])
    np.testing.assert_array_equal(erode(lumpy_slope(80, seed=2), 30.0, EROSION_STAGES["light"]), first)


@pytest.mark.parametrize("routing", [SINGLE_FLOW, MULTIPLE_FLOW])
def test_stage_is_linear_in_the_heights(routing):
    """n = 1: a map in metres and the same map scaled erode alike (the relief only scales the result)."""
    z = lumpy_slope(64, seed=1)
    params = StreamPower(steps=3, incision=1.0, diffusion=20.0, routing=routing)
    np.testing.assert_allclose(erode(3.0 * z, 30.0, params), 3.0 * erode(z, 30.0, params), rtol=1e-6, atol=1e-6)


def smooth_plane(angle: float, size: int = 128) -> np.ndarray:
    """A plane falling along ``angle`` degrees from the grid's x axis at 0.2, under 3 m of smooth noise: the
    planar slopes of the sampled maps, where single-flow routing cuts axis-aligned facets."""
    rows, cols = np.mgrid[0:size, 0:size] * 30.0
    a = np.radians(angle)
    noise = gaussian_filter(np.random.default_rng(0).standard_normal((size, size)), 2.0)
    return 0.2 * (cols * np.cos(a) + rows * np.sin(a)) + 3.0 * noise


def axis_share(z: np.ndarray) -> float:
    """Share of the gradient energy of ``z``'s fine texture (minus a 4-cell blur) whose direction lies within
    5 degrees of the grid's axes or diagonals: 10/45 = 0.22 for texture with no preferred direction."""
    fine = z - gaussian_filter(z, 4.0)
    gy, gx = np.gradient(fine)
    angle = np.degrees(np.arctan2(gy, gx)) % 45.0
    energy = gx ** 2 + gy ** 2
    return float(energy[(angle < 5.0) | (angle > 40.0)].sum() / energy.sum())


def test_light_and_smooth_stages_cut_no_axis_aligned_facets():
    """On smooth slopes that fall off the grid's axes, single flow (D8, the mature stage, which the surrogate
    learned) gathers area down parallel straight lines and cuts them: about 0.7 of the carved texture's gradient
    lies on the grid's axes or diagonals (0.22 with no preferred direction). The light and smooth stages gather
    area over multiple flow directions and leave 0.24-0.35 there."""
    assert EROSION_STAGES["mature"].routing == SINGLE_FLOW
    assert EROSION_STAGES["smooth"].routing == MULTIPLE_FLOW and EROSION_STAGES["light"].routing == NEAR_STEEPEST_FLOW
    inside = np.s_[8:-8, 8:-8]
    shares: dict[str, list[float]] = {"light": [], "smooth": [], "mature": []}
    for angle in (30.0, 60.0, 120.0, 150.0):
        z = smooth_plane(angle)
        for stage in shares:
            carved = erode(z, 30.0, EROSION_STAGES[stage]) - z
            shares[stage].append(axis_share(carved[inside]))
    assert np.mean(shares["mature"]) > 0.5
    assert np.mean(shares["light"]) < 0.3 and np.mean(shares["smooth"]) < 0.3


@pytest.fixture(scope="module")
def shipped() -> DiffusionGenerator:
    return DiffusionGenerator("cpu")


def test_generated_terrain_is_eroded_deterministically_by_seed(shipped):
    def world(stage: str, seed: int = 5) -> np.ndarray:
        request = GenerateRequest.from_params({"generator": "diffusion", "resolution": 128, "seed": seed,
                                               "size_m": shipped.native_size_m(128), "erosion_stage": stage})
        return shipped.generate(request, lambda *a: None).heights

    raw, light, smooth, mature = world("off"), world("light"), world("smooth"), world("mature")
    np.testing.assert_array_equal(light, world("light"))
    np.testing.assert_array_equal(smooth, world("smooth"))
    assert all(np.isfinite(h).all() for h in (raw, light, smooth, mature))
    assert pit_density(raw) > 3 * max(pit_density(light), pit_density(smooth), pit_density(mature))  # all drain pits
    assert np.abs(smooth - light).mean() > 0.1  # its own routing, not the light stage again
    assert np.abs(light - world("light", seed=6)).mean() > 20.0  # another seed is still another terrain


def _default_world(shipped: DiffusionGenerator, stage: str) -> np.ndarray:
    """An artist's world: 4 km at 256² (15.7 m cells, finer than the models' 30 m), alpine, seed 5."""
    request = GenerateRequest.from_params({"generator": "diffusion", "resolution": 256, "size_m": 4000.0,
                                           "seed": 5, "style_weights": {"alpine": 1.0}, "erosion_stage": stage})
    return shipped.generate(request, lambda *a: None).heights


def test_default_world_slopes_face_no_grid_direction(shipped):
    """The light stage on an artist's world leaves its slopes facing the grid's eight neighbours no more than other
    directions, as real DEMs' (grid alignment 0.00 +- 0.01; the raw sample 0.00), where single flow (mature) cuts
    planar facets facing them (about 0.2)."""
    cell = 4000.0 / 255
    raw = _default_world(shipped, "off").astype(np.float64)
    assert abs(grid_alignment(raw, cell)) < 0.02
    assert grid_alignment(erode(raw, cell, EROSION_STAGES["light"]), cell) < 0.02
    assert grid_alignment(erode(raw, cell, EROSION_STAGES["mature"]), cell) > 0.08


@pytest.mark.xfail(strict=True, reason="the stage's finish fails slopes at the talus angle toward the eight "
                   "neighbours (erosion.thermal_erosion), which cuts octagonal facets on the steeper land of the "
                   "corpus-v3 models: 0.028 on this world, -0.012 without the finish")
def test_finished_default_world_slopes_face_no_grid_direction(shipped):
    assert grid_alignment(_default_world(shipped, "light"), 4000.0 / 255) < 0.02


def test_wind_shaped_styles_get_no_river_network(shipped):
    """Dunes take no share of the erosion stage (style spec drainage 0); a mix with them takes part of it."""
    def world(style_weights: dict[str, float], stage: str) -> np.ndarray:
        request = GenerateRequest.from_params({"generator": "diffusion", "resolution": 96, "seed": 3,
                                               "size_m": shipped.native_size_m(96), "style_weights": style_weights,
                                               "erosion_stage": stage})
        return shipped.generate(request, lambda *a: None).heights

    dunes = {"desert_dunes": 1.0}
    np.testing.assert_array_equal(world(dunes, "mature"), world(dunes, "off"))
    mix = {"desert_dunes": 1.0, "alpine": 1.0}
    assert pit_density(world(mix, "mature")) < pit_density(world(mix, "off"))
