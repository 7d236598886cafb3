"""The erosion stage's finish: the style's talus failure and glacial troughs, on constructed terrain."""

from __future__ import annotations

import numpy as np
import pytest

from backend.grids import slope_degrees
from backend.simulation.finishing import Finish, finish, finish_for_styles
from backend.simulation.style_specs import STYLES

CELL = 30.0


def rubble(n: int = 65) -> np.ndarray:
    """Cell-scale lumps (20 m std on 30 m cells, a tenth of the slopes over 45 degrees), the border at 0 m."""
    z = np.random.default_rng(0).normal(0.0, 20.0, (n, n))
    z[[0, -1]] = 0.0
    z[:, [0, -1]] = 0.0
    return z


def valley(n: int = 97, relief: float = 1500.0) -> np.ndarray:
    """A V-shaped valley falling north to south, flanks at 30 degrees: a large catchment above any ELA."""
    rows, cols = np.mgrid[0:n, 0:n].astype(float)
    return relief * (1 - rows / n) * 0.5 + np.abs(cols - n // 2) * CELL * np.tan(np.radians(30.0))


def test_mix_takes_weighted_repose_and_glacial_share() -> None:
    alpine, glacial = STYLES["alpine"], STYLES["glacial_valleys"]
    pure = finish_for_styles({"alpine": 1.0})
    assert pure.troughs is None
    assert pure.talus_deg == pytest.approx((alpine.landscape.talus_deg.low + alpine.landscape.talus_deg.high) / 2)
    full = finish_for_styles({"glacial_valleys": 2.0})  # weights are normalised
    half = finish_for_styles({"alpine": 1.0, "glacial_valleys": 1.0})
    wall = glacial.extras["trough_wall_m"]
    assert full.troughs is not None and half.troughs is not None
    assert full.troughs.wall_height == pytest.approx((wall.low + wall.high) / 2)
    assert half.troughs.wall_height == pytest.approx(full.troughs.wall_height / 2)
    assert half.talus_deg == pytest.approx((pure.talus_deg + full.talus_deg) / 2)


def test_talus_relaxes_steep_slopes_and_keeps_the_border() -> None:
    z = rubble()
    out = finish(z, CELL, Finish(talus_deg=35.0))
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(out[0], z[0])
    np.testing.assert_array_equal(out[:, -1], z[:, -1])
    steep_before = (slope_degrees(z, CELL)[2:-2, 2:-2] > 45).mean()
    steep_after = (slope_degrees(out, CELL)[2:-2, 2:-2] > 45).mean()
    assert steep_before > 0.05 and steep_after < 0.2 * steep_before
    np.testing.assert_array_equal(out, finish(z, CELL, Finish(talus_deg=35.0)))  # deterministic


def test_troughs_widen_a_valley_floor_above_the_equilibrium_line() -> None:
    z = valley()
    glacial = finish_for_styles({"glacial_valleys": 1.0})
    fluvial = Finish(glacial.talus_deg)
    carved = finish(z, CELL, glacial)
    plain = finish(z, CELL, fluvial)
    mid, row = z.shape[1] // 2, z.shape[0] // 3
    near = slice(mid - 4, mid + 5)  # within a trough's half-width of the channel
    assert (plain[row, near] - carved[row, near]).mean() > 20.0  # the floor is cut into a U
    assert np.abs(carved - plain)[:, :3].max() == 0.0  # far flanks untouched
    # an equilibrium line above every height (span's top far above the map): no glacier, no trough
    np.testing.assert_array_equal(finish(z, CELL, glacial, span=(0.0, 50 * z.max())), plain)
