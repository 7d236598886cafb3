"""The erosion stage after the diffusion cascade: stream power and hillslope diffusion (fastscapelib)."""

from __future__ import annotations

import numpy as np
import pytest

from backend.generators import DiffusionGenerator, GenerateRequest
from backend.metrics.realism import pit_density
from backend.simulation.landscape import EROSION_STAGES, StreamPower, erode


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


def test_stage_is_linear_in_the_heights():
    """n = 1: a map in metres and the same map scaled erode alike (the relief only scales the result)."""
    z = lumpy_slope(64, seed=1)
    params = StreamPower(steps=3, incision=1.0, diffusion=20.0)
    np.testing.assert_allclose(erode(3.0 * z, 30.0, params), 3.0 * erode(z, 30.0, params), rtol=1e-6, atol=1e-6)


@pytest.fixture(scope="module")
def shipped() -> DiffusionGenerator:
    return DiffusionGenerator("cpu")


def test_generated_terrain_is_eroded_deterministically_by_seed(shipped):
    def world(stage: str, seed: int = 5) -> np.ndarray:
        request = GenerateRequest.from_params({"generator": "diffusion", "resolution": 128, "seed": seed,
                                               "size_m": shipped.native_size_m(128), "erosion_stage": stage})
        return shipped.generate(request, lambda *a: None).heights

    raw, light, mature = world("off"), world("light"), world("mature")
    np.testing.assert_array_equal(light, world("light"))
    assert all(np.isfinite(h).all() for h in (raw, light, mature))
    assert pit_density(raw) > 3 * max(pit_density(light), pit_density(mature))  # both drain the sampler's pits
    assert np.abs(light - world("light", seed=6)).mean() > 20.0  # another seed is still another terrain


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
