"""Realism metrics: exact answers on synthetic surfaces, set distances, hillshade and sheets."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from backend.metrics.realism import (
    FAMILIES,
    contact_sheet,
    grid_alignment,
    hillshade,
    pit_features,
    set_distance,
    slope_features,
    spectral_slope,
    terrain_features,
)
from backend.simulation.spectral_noise import fbm
from backend.terrain import Heightfield


def test_slope_of_a_plane_is_scale_aware():
    yy, xx = np.mgrid[0:20, 0:30]
    for cell in (10.0, 30.0):
        z = xx * cell * math.tan(math.radians(20.0))  # 20 degrees whatever the cell size
        assert slope_features(z, cell)["mean_deg"] == pytest.approx(20.0, abs=1e-9)


def test_spectral_slope_recovers_fbm_exponent():
    rng = np.random.default_rng(0)
    betas = [spectral_slope(fbm(128, rng, beta=2.0) * 500, 30.0) for _ in range(3)]
    assert np.mean(betas) == pytest.approx(3.0, abs=0.35)  # fbm(beta) has P(k) ~ k^-(beta+1)
    smooth = [spectral_slope(fbm(128, rng, beta=3.0) * 500, 30.0) for _ in range(3)]
    assert np.mean(smooth) > np.mean(betas) + 0.5


def test_grid_alignment_tells_facets_facing_the_grid_from_any_one_aspect():
    """Noise with no preferred direction and a plane facing any one way measure about 0; terraces of planes whose
    slopes face the grid's axes and diagonals (what steepest-neighbour flow cuts) measure near 1."""
    rng = np.random.default_rng(0)
    assert abs(grid_alignment(fbm(128, rng) * 500, 30.0)) < 0.02
    rows, cols = np.mgrid[0:128, 0:128] * 30.0
    for angle in (0.0, 20.0, 45.0):
        a = math.radians(angle)
        assert abs(grid_alignment(0.3 * (cols * math.cos(a) + rows * math.sin(a)), 30.0)) < 0.01, angle
    facing = np.radians(45.0 * rng.integers(0, 8, (8, 8))).repeat(16, 0).repeat(16, 1)  # 16-cell patches
    facets = np.zeros((128, 128))
    for k in np.unique(facing):
        patch = facing == k
        facets[patch] = 0.3 * (cols * np.cos(k) + rows * np.sin(k))[patch]
    assert grid_alignment(facets, 30.0) > 0.5


def test_pits_counted_exactly():
    z = np.tile(np.arange(10.0), (10, 1))  # a ramp: no pits
    assert pit_features(z, z)["log_pit_density"] == pytest.approx(math.log10(1e-5))
    z[4, 4] = -5.0
    z[6, 7] = -5.0
    f = pit_features(z, z)
    assert f["log_pit_density"] == pytest.approx(math.log10(2 / 64 + 1e-5))


def test_features_and_distances():
    rng = np.random.default_rng(1)
    a = [terrain_features(Heightfield((fbm(64, rng) * 300).astype(np.float32), 30.0)) for _ in range(2)]
    b = [terrain_features(Heightfield((fbm(64, rng, beta=3.0) * 300).astype(np.float32), 10.0)) for _ in range(2)]
    assert set(a[0]) == set(FAMILIES)
    assert all(math.isfinite(v) for fam in a[0].values() for v in fam.values())
    d_same = set_distance(a, a)
    assert all(v == 0.0 for v in d_same.values())
    d = set_distance(a, b)
    assert d["spectrum"] > 0.5 and d["total"] > 0
    assert d["total"] == pytest.approx(np.mean([d[f] for f in FAMILIES]))


def test_hillshade_and_contact_sheet(tmp_path):
    flat = np.zeros((8, 8))
    np.testing.assert_allclose(hillshade(flat, 10.0), math.sin(math.radians(45.0)))
    yy, xx = np.mgrid[0:8, 0:8].astype(float)
    facing_sun = hillshade(xx * 5.0, 10.0)  # rises to the east: faces west, towards a NW sun
    away = hillshade(-xx * 5.0, 10.0)
    assert facing_sun.mean() > away.mean()
    hfs = [Heightfield(fbm(32, np.random.default_rng(i)).astype(np.float32) * 100, 10.0) for i in range(3)]
    path = contact_sheet(hfs, tmp_path / "sheet.png", ["a", "b", "c"], cols=2)
    with Image.open(path) as im:
        assert im.size[0] > 100 and im.size[1] > 100
    with pytest.raises(ValueError, match="titles"):
        contact_sheet(hfs, tmp_path / "x.png", ["a"])
