"""The ``style_from`` job over real sockets: a simulated desert map, sent as heights or read from 16-bit PNG,
GeoTIFF and .npy files, is recognised as desert dunes with its relief and sea level; bad files and params
get clear errors naming them. Plus the classifier's calibration and slider regression on exact data."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import tifffile
from PIL import Image

from backend.metrics.style_classifier import StyleClassifier
from backend.simulation.styles import elevation_slider, simulate
from protocol.client import BackendError

CELL = 30.0


@pytest.fixture(scope="module")
def dunes() -> np.ndarray:
    """A 128² desert map of the simulation that makes the corpus (30 m cells), 5 % of it pushed under the sea."""
    heights = simulate("desert_dunes", seed=3, size=128, cell_size=CELL).heights
    return (heights - np.quantile(heights, 0.05)).astype(np.float32)


def style_from(client, params, arrays=None):
    job = client.submit("style_from", params, target="pytest-style", arrays=arrays or {})
    return client.wait_result(job, timeout=60).content["meta"]


def test_reference_from_heights_and_files_finds_the_style(client, dunes, tmp_path):
    relief = float(np.ptp(dunes))
    sent = style_from(client, {"cell_size": CELL}, {"heights": dunes})
    assert max(sent["style_weights"], key=sent["style_weights"].get) == "desert_dunes"
    assert sent["style_weights"]["desert_dunes"] > 0.5 and sum(sent["style_weights"].values()) == pytest.approx(1.0)
    assert set(sent["sliders"]) == {"roughness", "erosion_strength", "elevation_range", "sea_level"}
    assert all(0.0 <= v <= 1.0 for v in sent["sliders"].values())
    assert sent["sliders"]["sea_level"] == pytest.approx(0.05, abs=0.005)
    assert sent["sliders"]["elevation_range"] == pytest.approx(elevation_slider(relief))
    assert sent["relief_m"] == pytest.approx(relief) and sent["shape"] == [128, 128] and sent["cell_size"] == CELL

    np.save(tmp_path / "dunes.npy", dunes)
    assert style_from(client, {"path": str(tmp_path / "dunes.npy"), "cell_size": CELL})["style_weights"] == \
        sent["style_weights"]  # the same metres, so exactly the same answer
    tifffile.imwrite(tmp_path / "dunes.tif", dunes, extratags=[(33550, "d", 3, (CELL, CELL, 0.0), False)])
    tif = style_from(client, {"path": str(tmp_path / "dunes.tif")})  # the GeoTIFF states its cell size
    assert tif["cell_size"] == CELL and tif["style_weights"] == sent["style_weights"]

    raw = np.round((dunes - dunes.min()) / relief * 65535).astype(np.uint16)  # a 16-bit image stores 0..65535
    Image.fromarray(raw).save(tmp_path / "dunes.png")
    png = style_from(client, {"path": str(tmp_path / "dunes.png"), "cell_size": CELL, "height_m": relief})
    assert png["relief_m"] == pytest.approx(relief, rel=1e-5)
    assert max(png["style_weights"], key=png["style_weights"].get) == "desert_dunes"
    assert png["sliders"]["sea_level"] == 0.0  # an image has no sea: its heights start at 0 m


def _garbage_png(tmp_path):
    (tmp_path / "bad.png").write_text("not an image")
    return {"path": str(tmp_path / "bad.png"), "cell_size": CELL}


def _rgb_png(tmp_path):
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "rgb.png")
    return {"path": str(tmp_path / "rgb.png"), "cell_size": CELL}


def _huge_npy(tmp_path):
    np.lib.format.open_memmap(tmp_path / "huge.npy", mode="w+", dtype=np.uint8, shape=(9000, 9000)).flush()
    return {"path": str(tmp_path / "huge.npy"), "cell_size": CELL}


def _no_cell_size(tmp_path):
    np.save(tmp_path / "h.npy", np.zeros((32, 32), np.float32))
    return {"path": str(tmp_path / "h.npy")}


def _text_file(tmp_path):
    (tmp_path / "h.txt").write_text("1 2 3")
    return {"path": str(tmp_path / "h.txt"), "cell_size": CELL}


@pytest.mark.parametrize("make,code,words", [
    (lambda t: {"path": str(t / "missing.png"), "cell_size": CELL}, "bad_params", "does not exist"),
    (_text_file, "bad_params", "unsupported elevation file type '.txt'"),
    (_garbage_png, "bad_params", "not a readable elevation raster"),
    (_huge_npy, "bad_params", "at most 8192"),
    (lambda t: {"path": 3}, "bad_params", "path"),
    (lambda t: {"path": "x.npy", "cell_size": -1.0}, "bad_params", "cell_size"),
    (lambda t: {"cell_size": CELL}, "bad_params", "neither"),
    (lambda t: {"path": "x.npy", "extra": 1}, "bad_params", "extra"),
    (_rgb_png, "job_failed", "PNG mode 'RGB'"),
    (_no_cell_size, "job_failed", "cell size"),
])
def test_bad_references_are_refused_naming_the_problem(client, tmp_path, make, code, words):
    with pytest.raises(BackendError) as err:
        style_from(client, make(tmp_path))
    assert err.value.code == code and words in str(err.value), str(err.value)


def test_bad_reference_heights_are_refused(client, dunes):
    with pytest.raises(BackendError) as err:  # both sources
        style_from(client, {"path": "x.npy", "cell_size": CELL}, {"heights": dunes})
    assert err.value.code == "bad_params" and "both" in str(err.value)
    with pytest.raises(BackendError) as err:
        style_from(client, {}, {"heights": dunes})
    assert err.value.code == "bad_params" and "cell_size" in str(err.value)
    with pytest.raises(BackendError) as err:
        style_from(client, {"cell_size": CELL}, {"heights": dunes[:8, :8].copy()})
    assert err.value.code == "job_failed" and "at least 16x16" in str(err.value)


def test_classifier_calibration_and_slider_regression_on_exact_data():
    """Two styles far apart in feature space with sliders that are linear in the features: the
    regression recovers them, and the calibrated temperature makes a clear case confident."""
    rng = np.random.default_rng(0)
    n, f = 200, 14
    labels = ["a"] * n + ["b"] * n
    features = np.r_[rng.normal(0, 1, (n, f)), rng.normal(3, 1, (n, f))]
    sliders = np.c_[0.5 + 0.05 * features[:, 0], 0.3 + 0.04 * features[:, 1] - 0.02 * features[:, 2]]
    clf = StyleClassifier.fit(features, labels, sliders, ("roughness", "erosion_strength"))
    held = np.r_[rng.normal(0, 1, (20, f)), rng.normal(3, 1, (20, f))]
    tuned = clf.calibrated(held, ["a"] * 20 + ["b"] * 20)
    assert tuned.temperature != clf.temperature and tuned.centroids == clf.centroids
    assert tuned.style_weights(held[:1])["a"] > clf.style_weights(held[:1])["a"] > 0.5
    estimates = np.array([list(clf.slider_estimates(x[None]).values()) for x in held])
    truth = np.c_[0.5 + 0.05 * held[:, 0], 0.3 + 0.04 * held[:, 1] - 0.02 * held[:, 2]]
    assert np.abs(estimates - truth).max() < 0.01
    assert StyleClassifier.fit(features, labels).slider_estimates(held[:1]) == {}


def test_classifier_measures_distance_with_the_styles_shared_covariance():
    """Two styles that differ only across a direction along which the features are strongly correlated
    (as slope mean and spread are): Euclidean nearest centroid confuses them, the shrunk discriminant
    the classifier fits does not."""
    rng = np.random.default_rng(1)
    n = 300
    shared = rng.normal(0, 3, (2 * n, 1))  # a large common factor in both features
    features = np.c_[shared + rng.normal(0, 0.3, (2 * n, 1)), shared + rng.normal(0, 0.3, (2 * n, 1))]
    features[n:, 0] += 1.5  # the styles differ in the difference of the two features
    labels = np.array(["a"] * n + ["b"] * n)
    clf = StyleClassifier.fit(features[::2], list(labels[::2]))
    euclidean = replace(clf, precision=[])
    held, truth = features[1::2], labels[1::2]
    assert np.mean(np.array(clf.predict(held)) == truth) > 0.9
    assert np.mean(np.array(euclidean.predict(held)) == truth) < 0.7
