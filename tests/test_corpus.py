"""Corpus determinism and format; importers keep the values they read."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from PIL import Image

from backend.data.corpus import build_corpus, sha256
from backend.data.importers import import_to_corpus, read_elevation


def _build(path, **kw):
    args = dict(seed=11, maps_per_style=2, map_size=32, tile=16, styles=("rolling_hills", "canyon_mesa"),
                shard_tiles=6, progress=False)
    args.update(kw)
    return build_corpus(path, **args)


def test_corpus_is_deterministic_and_readable(tmp_path):
    m1 = _build(tmp_path / "a")
    _build(tmp_path / "b")
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "b").iterdir())
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert m1["total_tiles"] == 2 * 2 * 4
    splits = {s: sum(x["tiles"] for x in m1["shards"][s]) for s in ("train", "heldout")}
    assert splits == {"train": 8, "heldout": 8}  # one whole map of each style held out
    seen = set()
    for split, shards in m1["shards"].items():
        for shard in shards:
            path = tmp_path / "a" / shard["file"]
            assert sha256(path) == shard["sha256"] and path.stat().st_size == shard["bytes"]
            with np.load(path, allow_pickle=False) as d:
                n = len(d["heights"])
                assert d["heights"].shape == (n, 16, 16) and d["heights"].dtype == np.float32
                assert d["masks"].shape == (n, len(d["mask_names"]), 16, 16)
                assert d["params"].shape == (n, len(d["param_names"]))
                np.testing.assert_allclose(d["splat"].sum(1), 1.0, atol=1e-5)
                seen.update(zip(d["map_id"].tolist(), d["row"].tolist(), d["col"].tolist()))
    # Every map keeps all its 2x2 tiles, so neighbours exist for memory training.
    assert seen == {(m, r, c) for m in range(4) for r in range(2) for c in range(2)}
    other = _build(tmp_path / "c", seed=12)
    assert other["shards"]["train"][0]["sha256"] != m1["shards"]["train"][0]["sha256"]


def test_corpus_size_cap(tmp_path):
    map_bytes = 4 * 16 * 16 * 4 * (1 + 6 + 6)  # 4 tiles of heights + 6 masks + 6 splat planes
    m = _build(tmp_path, max_bytes=map_bytes - 1)
    assert m["truncated"] and m["total_tiles"] == 0
    m = _build(tmp_path / "d", max_bytes=map_bytes * 3 // 2)
    assert m["truncated"] and m["total_tiles"] == 4
    assert json.loads((tmp_path / "d" / "manifest.json").read_text())["total_tiles"] == 4


def test_importers_keep_values(tmp_path):
    rng = np.random.default_rng(0)
    raw16 = rng.integers(0, 65535, size=(20, 24), dtype=np.uint16)
    Image.fromarray(raw16).save(tmp_path / "h.png")
    hf = read_elevation(tmp_path / "h.png", cell_size=5.0, vertical_scale=0.125, vertical_offset=-100.0)
    np.testing.assert_array_equal(hf.heights, (raw16 * 0.125 - 100.0).astype(np.float32))
    assert hf.cell_size == 5.0

    heights = (rng.random((20, 24)) * 3000 - 200).astype(np.float32)
    tifffile.imwrite(tmp_path / "h.tif", heights, extratags=[(33550, "d", 3, (12.5, 12.5, 0.0), False)])
    hf = read_elevation(tmp_path / "h.tif")
    np.testing.assert_array_equal(hf.heights, heights)
    assert hf.cell_size == 12.5

    np.save(tmp_path / "h.npy", heights)
    np.testing.assert_array_equal(read_elevation(tmp_path / "h.npy", cell_size=2.0).heights, heights)

    import OpenEXR

    from backend.export.heightmaps import write_exr

    write_exr(tmp_path / "h.exr", heights)  # single channel "R", as the exporter writes it
    np.testing.assert_array_equal(read_elevation(tmp_path / "h.exr", cell_size=2.0).heights, heights)
    rgb = np.repeat(heights[..., None], 3, axis=2)  # an RGB EXR from a paint program: the first channel
    with OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}, {"RGB": rgb}) as f:
        f.write(str(tmp_path / "rgb.exr"))
    np.testing.assert_array_equal(read_elevation(tmp_path / "rgb.exr", cell_size=2.0).heights, heights)

    with pytest.raises(ValueError, match="cell_size"):
        read_elevation(tmp_path / "h.npy")
    m = import_to_corpus([tmp_path / "h.tif", tmp_path / "h.png"], tmp_path / "corpus", tile=8,
                         cell_size=12.5, vertical_scale=0.125)
    with np.load(tmp_path / "corpus" / m["shards"]["imported"][0]["file"], allow_pickle=False) as d:
        np.testing.assert_array_equal(d["heights"][0], heights[:8, :8])
        assert len(d["heights"]) == 2 * 2 * 3
