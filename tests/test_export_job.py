"""The ``export`` job against a live backend: files that read back equal, refused params, failing paths."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from protocol import ErrorCode
from protocol.client import BackendError, Client


def _heights(h: int = 33, w: int = 41) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    return (120.0 * np.sin(x / 7.0) * np.cos(y / 5.0) + 0.5 * x - 30.0).astype(np.float32)


def _params(out_dir: Path, **extra) -> dict:
    return {"out_dir": str(out_dir), "formats": ["png16", "geotiff"], "name": "tile", "cell_size": 2.5,
            "preset": None, "byte_order": "little", **extra}


def _export(client: Client, params: dict, heights: np.ndarray) -> list[Path]:
    job_id = client.submit("export", params, "Terrain", timeout=5, arrays={"heights": heights})
    return [Path(p) for p in client.wait_result(job_id, timeout=30).content["meta"]["files"]]


def test_export_writes_files_that_read_back(client, tmp_path):
    heights = _heights()
    files = _export(client, _params(tmp_path, formats=["png16", "geotiff", "r16", "glb"]), heights)
    assert all(f.exists() and f.parent == tmp_path for f in files)
    by_suffix = {f.suffix: f for f in files}
    assert {".png", ".tif", ".r16", ".glb"} <= set(by_suffix), files

    exact = tifffile.imread(by_suffix[".tif"])
    np.testing.assert_array_equal(exact, heights)

    png = np.asarray(Image.open(by_suffix[".png"]), dtype=np.float64)
    assert png.shape == heights.shape and png.max() > 60000  # the full 16-bit range is used
    lo, hi = float(heights.min()), float(heights.max())
    step = (hi - lo) / 65535.0
    decoded = lo + png / 65535.0 * (hi - lo)
    assert np.abs(decoded - heights).max() <= step


def test_preset_none_is_the_grid_size_and_unreal_resamples(client, tmp_path):
    """The Preset menu's choices (hello_reply): "none" exports at the grid's own size, as no preset does."""
    heights = _heights(41, 41)  # engine sizes are square
    sizes = {}
    for preset in ("none", None, "unreal"):
        out = tmp_path / str(preset)
        files = _export(client, _params(out, formats=["png16"], preset=preset), heights)
        (png,) = [f for f in files if f.suffix == ".png"]
        sizes[preset] = Image.open(png).size
    assert sizes["none"] == sizes[None] == (41, 41) and sizes["unreal"] == (127, 127)


@pytest.mark.parametrize("params, arrays, words", [
    ({"formats": ["png16", "jpeg"]}, None, "jpeg"),
    ({"preset": "godot"}, None, "godot"),
    ({"byte_order": "middle"}, None, "middle"),
    ({"cell_size": -1.0}, None, "cell_size"),
    ({"name": "../escape"}, None, "../escape"),
    ({}, {}, "heights"),
    ({}, {"heights": np.zeros((4,), np.float32)}, "shape"),
    ({}, {"heights": np.array([[0.0, np.nan], [1.0, 2.0]], np.float32)}, "NaN"),
])
def test_bad_export_params_are_refused(client, tmp_path, params, arrays, words):
    arrays = {"heights": _heights(4, 4)} if arrays is None else arrays
    with pytest.raises(BackendError) as info:
        client.submit("export", _params(tmp_path, **params), "Terrain", timeout=5, arrays=arrays)
    assert info.value.code == ErrorCode.BAD_PARAMS.value
    assert words in str(info.value)
    assert not any(tmp_path.iterdir())


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_unwritable_folder_fails_the_job_and_server_keeps_serving(client, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        job_id = client.submit("export", _params(locked / "sub"), "Terrain", timeout=5, arrays={"heights": _heights()})
        with pytest.raises(BackendError) as info:
            client.wait_result(job_id, timeout=30)
        assert info.value.code == ErrorCode.JOB_FAILED.value and "export failed" in str(info.value)
    finally:
        locked.chmod(0o700)
    assert _export(client, _params(tmp_path / "after"), _heights())  # still serving


def test_file_in_place_of_folder_fails_the_job(client, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    job_id = client.submit("export", _params(blocker), "Terrain", timeout=5, arrays={"heights": _heights()})
    with pytest.raises(BackendError) as info:
        client.wait_result(job_id, timeout=30)
    assert info.value.code == ErrorCode.JOB_FAILED.value
    assert _export(client, _params(tmp_path / "after"), _heights())
