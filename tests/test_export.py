"""Export round trips: every file is read back with a reader other than the one that wrote it.

The test terrain is asymmetric on purpose: a ramp rising east plus a bump in the north-west, so a
flipped or transposed export lands the bump or the slope in the wrong place and fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from backend.export import export_terrain, prepare_dir, safe_path
from backend.export.paths import atomic_write, write_bytes
from backend.meshing import grid_faces, grid_mesh, voxel_mesh
from backend.terrain import Heightfield

H, W, CELL = 49, 65, 2.0  # non-square so a transpose cannot pass
BUMP_RC = (8, 10)  # north-west: small row = north, small column = west
RAMP = 1.5  # metres per column, rising east


def make_terrain(h: int = H, w: int = W) -> Heightfield:
    r, c = np.mgrid[:h, :w].astype(np.float32)
    heights = 100.0 + RAMP * c + 40.0 * np.exp(-((r - BUMP_RC[0]) ** 2 + (c - BUMP_RC[1]) ** 2) / 20.0)
    east = c / (w - 1)
    splat = np.stack([1 - east, east * 0.6, east * 0.3, east * 0.1, np.zeros_like(east)], -1)  # 5 layers
    masks = {"flow": (r / (h - 1)).astype(np.float32), "deposition": (1 - east).astype(np.float32)}
    return Heightfield(heights, CELL, masks, splat, ("grass", "rock", "sand", "snow", "mud"), "alpine")


def bump_pos(heights: np.ndarray) -> tuple[int, int]:
    """(row, col) of the bump after removing the east ramp from a (H, W) map in image order."""
    cols = np.arange(heights.shape[1]) * (RAMP * (W - 1) / (heights.shape[1] - 1))
    resid = heights - cols[None, :]
    return np.unravel_index(np.argmax(resid), resid.shape)  # type: ignore[return-value]


def decode16(v: np.ndarray, meta: dict) -> np.ndarray:
    lo, hi = meta["height_min_m"], meta["height_max_m"]
    return lo + v.astype(np.float64) * (hi - lo) / 65535.0


@pytest.fixture(scope="module")
def hf() -> Heightfield:
    return make_terrain()


# ------------------------------------------------------------------------------------------- meshing

def test_grid_mesh_frame_winding_and_cache(hf: Heightfield) -> None:
    v, f = grid_mesh(hf)
    assert v.shape == (H * W, 3) and v.dtype == np.float32 and f.dtype == np.int32
    assert f.shape == (2 * (H - 1) * (W - 1), 3)
    ext = ((W - 1) * CELL, (H - 1) * CELL)
    np.testing.assert_allclose(v[:, :2].min(0), [-ext[0] / 2, -ext[1] / 2])
    np.testing.assert_allclose(v[:, :2].max(0), [ext[0] / 2, ext[1] / 2])
    assert v[0, 0] < 0 < v[0, 1]  # vertex 0 = row 0, col 0 = north-west corner
    np.testing.assert_array_equal(v[:, 2], hf.heights.ravel())
    tri = v[f]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    assert (normals[:, 2] > 0).all()  # counter-clockwise seen from above
    assert grid_faces(H, W) is grid_faces(H, W) and not grid_faces(H, W).flags.writeable
    with pytest.raises(ValueError, match="2x2"):
        grid_faces(1, 5)


def test_voxel_mesh_sphere_is_closed_outward_and_in_world_frame() -> None:
    z, y, x = np.mgrid[:24, :24, :24].astype(np.float32)
    density = 8.0 - np.sqrt((x - 11.5) ** 2 + (y - 11.5) ** 2 + (z - 11.5) ** 2)  # solid inside
    v, f = voxel_mesh(density, 0.0, voxel_size=0.5, origin=(10.0, 20.0, 0.0))
    import trimesh

    m = trimesh.Trimesh(v, f, process=True)
    assert m.is_watertight
    assert m.volume == pytest.approx(4 / 3 * np.pi * 4.0**3, rel=0.03)  # positive = faces wind outward
    np.testing.assert_allclose(m.centroid, [10 + 5.75, 20 - 5.75, 5.75], atol=0.05)
    with pytest.raises(ValueError, match="voxel_size"):
        voxel_mesh(density, 0.0, voxel_size=0.0)


# ------------------------------------------------------------------------------------------- heightmaps

def test_png16_roundtrip_orientation_and_quantisation(tmp_path: Path, hf: Heightfield) -> None:
    import imageio.v3 as iio
    from PIL import Image

    export_terrain(hf, tmp_path, ["png16"])
    meta = json.loads((tmp_path / "terrain.png.json").read_text())
    with Image.open(tmp_path / "terrain.png") as im:
        assert im.mode.startswith("I;16") and im.size == (W, H)
    v = iio.imread(tmp_path / "terrain.png")
    assert v.dtype == np.uint16 and v.shape == (H, W) and v.min() == 0 and v.max() == 65535
    step = (meta["height_max_m"] - meta["height_min_m"]) / 65535
    assert np.abs(decode16(v, meta) - hf.heights).max() <= step * 0.5 + 1e-4
    assert meta["height_min_m"] == pytest.approx(hf.heights.min()) and meta["cell_size_m"] == CELL
    assert meta["world_size_m"] == [(W - 1) * CELL, (H - 1) * CELL]
    assert bump_pos(decode16(v, meta)) == BUMP_RC
    assert v[H - 1, W - 1] > v[H - 1, 0]  # ramp rises east


def test_raw_r16_byte_orders_and_unity_row_order(tmp_path: Path, hf: Heightfield) -> None:
    export_terrain(hf, tmp_path / "a", ["r16"])
    r16 = np.fromfile(tmp_path / "a" / "terrain.r16", dtype="<u2")
    assert r16.size == H * W
    meta = json.loads((tmp_path / "a" / "terrain.r16.json").read_text())
    assert meta["byte_order"] == "little" and meta["row_order"] == "north_first"
    img = decode16(r16.reshape(H, W), meta)
    assert np.abs(img - hf.heights).max() <= (meta["height_max_m"] - meta["height_min_m"]) / 65535
    assert bump_pos(img) == BUMP_RC

    with pytest.raises(ValueError, match="square"):  # Unity terrains are square
        export_terrain(hf, tmp_path / "c", ["raw"], preset="unity")
    sq = make_terrain(65, 65)
    export_terrain(sq, tmp_path / "b", ["raw"], byte_order="big", preset="unity")
    raw = np.fromfile(tmp_path / "b" / "terrain.raw", dtype=">u2").reshape(65, 65)
    meta = json.loads((tmp_path / "b" / "terrain.raw.json").read_text())
    assert meta["byte_order"] == "big" and meta["row_order"] == "south_first"
    assert bump_pos(decode16(raw[::-1], meta)) == BUMP_RC  # first row in the file is the south edge
    assert meta["engine_hints"]["unity"]["terrain_height_m"] == pytest.approx(sq.heights.max() - sq.heights.min())


def test_exr_float_metres_exact(tmp_path: Path, hf: Heightfield) -> None:
    OpenEXR = pytest.importorskip("OpenEXR")
    export_terrain(hf, tmp_path, ["exr"])
    with OpenEXR.File(str(tmp_path / "terrain.exr")) as f:
        px = f.channels()["R"].pixels
    assert px.dtype == np.float32 and px.shape == (H, W)
    np.testing.assert_array_equal(px, hf.heights)  # lossless float32
    assert bump_pos(px) == BUMP_RC


def test_geotiff_values_and_georeference(tmp_path: Path, hf: Heightfield) -> None:
    import tifffile

    export_terrain(hf, tmp_path, ["geotiff"])
    with tifffile.TiffFile(tmp_path / "terrain.tif") as tif:
        page = tif.pages[0]
        data = page.asarray()
        scale = page.tags["ModelPixelScaleTag"].value
        tie = page.tags["ModelTiepointTag"].value
        keys = page.tags["GeoKeyDirectoryTag"].value
    assert data.dtype == np.float32
    np.testing.assert_array_equal(data, hf.heights)
    assert tuple(scale) == (CELL, CELL, 0.0)
    assert tuple(tie) == (0, 0, 0, -(W - 1) * CELL / 2, (H - 1) * CELL / 2, 0)  # NW vertex, centred frame
    assert list(keys[4:8]) == [1024, 0, 1, 1] and 9001 in keys  # projected, metres


def test_presets_resample_keep_world_size(tmp_path: Path) -> None:
    sq = make_terrain(65, 65)
    out = export_terrain(sq, tmp_path, ["png16", "masks"], preset="unreal")
    meta = json.loads((tmp_path / "terrain.png.json").read_text())
    assert (meta["width"], meta["height"]) == (127, 127)  # smallest Unreal size >= 65
    assert meta["world_size_m"] == [64 * CELL, 64 * CELL] and meta["cell_size_m"] == pytest.approx(64 * CELL / 126)
    assert meta["resampled_from"] == [65, 65] and "order=3" in meta["resample_filter"]
    import imageio.v3 as iio

    v = decode16(iio.imread(tmp_path / "terrain.png"), meta)
    assert v.shape == (127, 127)
    from scipy import ndimage

    r, c = np.mgrid[:65, :65] * (126 / 64)  # corner-aligned: source vertex (r, c) sits at (r, c) * 126/64
    back = ndimage.map_coordinates(v, [r, c], order=1)
    np.testing.assert_allclose(back, sq.heights, atol=0.3)
    np.testing.assert_allclose(v[[0, 0, -1, -1], [0, -1, 0, -1]], sq.heights[[0, 0, -1, -1], [0, -1, 0, -1]], atol=0.01)
    assert iio.imread(tmp_path / "terrain_mask_flow.png").shape == (127, 127)
    assert len(out) == len(set(out))
    with pytest.raises(ValueError, match="not a unity size"):
        export_terrain(sq, tmp_path, ["png16"], preset="unity", size=100)


def test_tiles_share_borders_and_reassemble(tmp_path: Path) -> None:
    import imageio.v3 as iio

    sq = make_terrain(65, 65)
    export_terrain(sq, tmp_path, ["png16", "r16"], tile_size=33)
    meta = json.loads((tmp_path / "terrain.png.json").read_text())
    assert [e["file"] for e in meta["files"]] == [f"terrain_x{i}_y{j}.png" for j in (0, 1) for i in (0, 1)]
    t = {(i, j): iio.imread(tmp_path / f"terrain_x{i}_y{j}.png") for i in (0, 1) for j in (0, 1)}
    assert all(a.shape == (33, 33) for a in t.values())
    np.testing.assert_array_equal(t[0, 0][:, -1], t[1, 0][:, 0])  # east border = neighbour's west border
    np.testing.assert_array_equal(t[0, 0][-1, :], t[0, 1][0, :])  # south border = neighbour's north border
    full = np.block([[t[0, 0][:-1, :-1], t[1, 0][:-1]], [t[0, 1][:, :-1], t[1, 1]]])
    assert bump_pos(decode16(full, meta)) == BUMP_RC  # x0_y0 is the north-west tile
    np.testing.assert_allclose(decode16(full, meta), sq.heights, atol=(meta["height_max_m"] - meta["height_min_m"]) / 65535)
    r = np.fromfile(tmp_path / "terrain_x1_y1.r16", dtype="<u2").reshape(33, 33)
    np.testing.assert_array_equal(r, t[1, 1])
    with pytest.raises(ValueError, match="tile_size 30"):
        export_terrain(sq, tmp_path, ["png16"], tile_size=30)


# ------------------------------------------------------------------------------------------- masks

def test_masks_splat_rgba_and_grayscale(tmp_path: Path, hf: Heightfield) -> None:
    from PIL import Image

    export_terrain(hf, tmp_path, ["masks"])
    meta = json.loads((tmp_path / "terrain_masks.json").read_text())
    layers = {layer["name"]: layer for layer in meta["splat_layers"]}
    assert layers["mud"]["files"] == ["terrain_splat1.png"] and layers["mud"]["channel"] == "R"
    with Image.open(tmp_path / "terrain_splat0.png") as im:
        assert im.mode == "RGBA" and im.size == (W, H)
        rgba = np.asarray(im)
    with Image.open(tmp_path / "terrain_splat1.png") as im:
        rgba1 = np.asarray(im)
    weights = np.concatenate([rgba, rgba1], -1)[..., :5].astype(np.float32) / 255
    assert np.abs(weights - hf.splat).max() <= 0.5 / 255 + 1e-6
    assert (rgba1[..., 1:] == 0).all()  # unused channels of the last image stay empty
    with Image.open(tmp_path / "terrain_mask_flow.png") as im:
        assert im.mode == "L"
        flow = np.asarray(im)
    assert flow[0].max() == 0 and flow[-1].min() == 255  # flow mask = row/(H-1): 0 at the north edge
    with Image.open(tmp_path / "terrain_mask_slope.png") as im:
        assert np.asarray(im).shape == (H, W)  # computed, the terrain had none
    with Image.open(tmp_path / "terrain_style.png") as im:
        assert np.unique(np.asarray(im)).tolist() == [1]
    assert meta["style_map"]["legend"]["1"] == "alpine"


# ------------------------------------------------------------------------------------------- meshes

@pytest.mark.parametrize("fmt", ["glb", "gltf", "obj", "ply", "stl"])
def test_mesh_formats_roundtrip(tmp_path: Path, hf: Heightfield, fmt: str) -> None:
    import trimesh

    export_terrain(hf, tmp_path, [fmt])
    m = trimesh.load(tmp_path / f"terrain.{fmt}", force="mesh", process=False)
    v = np.asarray(m.vertices)
    if fmt in ("glb", "gltf"):
        v = np.stack([v[:, 0], -v[:, 2], v[:, 1]], -1)  # glTF is Y-up: back to x east, y north, z up
    if fmt == "stl":  # STL stores each triangle's corners separately
        assert len(m.faces) == 2 * (H - 1) * (W - 1)
    else:
        assert v.shape == (H * W, 3) and len(m.faces) == 2 * (H - 1) * (W - 1)
    np.testing.assert_allclose(v.min(0), [-(W - 1), -(H - 1), hf.heights.min()], atol=1e-3)
    np.testing.assert_allclose(v.max(0), [W - 1, H - 1, hf.heights.max()], atol=1e-3)
    resid = v[:, 2] - RAMP * (v[:, 0] + (W - 1)) / CELL
    top = v[np.argmax(resid)]
    expected = (-(W - 1) + BUMP_RC[1] * CELL, (H - 1) - BUMP_RC[0] * CELL)
    np.testing.assert_allclose(top[:2], expected, atol=1e-3)  # bump lands north-west
    face_normals = np.asarray(m.face_normals)
    up = face_normals[:, 1] if fmt in ("glb", "gltf") else face_normals[:, 2]
    assert (up > 0).all()
    if fmt != "stl":
        colors = np.asarray(m.visual.vertex_colors)
        assert colors.shape == (H * W, 4) and len(np.unique(colors[:, :3], axis=0)) > 10


@pytest.mark.parametrize("method", ["quadric", "grid"])
def test_decimation_hits_target_and_keeps_bounds(tmp_path: Path, hf: Heightfield, method: str) -> None:
    import trimesh

    if method == "quadric":
        pytest.importorskip("fast_simplification")
    export_terrain(hf, tmp_path, ["ply"], target_triangles=1500, decimation=method)  # type: ignore[arg-type]
    m = trimesh.load(tmp_path / "terrain.ply", process=False)
    assert 1200 <= len(m.faces) <= 1600
    np.testing.assert_allclose(m.bounds[:, :2], [[-(W - 1), -(H - 1)], [W - 1, H - 1]], atol=1e-3)
    assert abs(m.bounds[1, 2] - hf.heights.max()) < 2.0  # peak survives decimation (within 2 m)
    assert np.asarray(m.visual.vertex_colors).shape == (len(m.vertices), 4)


def test_chunked_meshes_meet_without_cracks(tmp_path: Path) -> None:
    import trimesh

    sq = make_terrain(65, 65)
    export_terrain(sq, tmp_path, ["glb"], chunk_size=33, target_triangles=3000)
    names = sorted(p.name for p in tmp_path.glob("terrain_x*_y*.glb"))
    assert names == ["terrain_x0_y0.glb", "terrain_x0_y1.glb", "terrain_x1_y0.glb", "terrain_x1_y1.glb"]
    west = trimesh.load(tmp_path / "terrain_x0_y0.glb", force="mesh").vertices
    east = trimesh.load(tmp_path / "terrain_x1_y0.glb", force="mesh").vertices
    seam_x = 0.0  # shared column of the two north chunks, in the centred frame
    a = np.unique(np.round(west[np.abs(west[:, 0] - seam_x) < 1e-4][:, 1:], 4), axis=0)
    b = np.unique(np.round(east[np.abs(east[:, 0] - seam_x) < 1e-4][:, 1:], 4), axis=0)
    assert len(a) == 33 and np.array_equal(a, b)  # identical seam vertices: no cracks


# ------------------------------------------------------------------------------------------- paths

def test_safe_path_refuses_escapes(tmp_path: Path) -> None:
    root = prepare_dir(tmp_path / "out")
    assert safe_path(root, "a/b.png") == root / "a" / "b.png"
    for bad in ["../x.png", "a/../../x.png", "/etc/passwd", str(tmp_path / "elsewhere.png"), ""]:
        with pytest.raises(ValueError):
            safe_path(root, bad)
    (root / "link").symlink_to(tmp_path)  # a link inside the folder pointing out of it
    with pytest.raises(ValueError, match="outside"):
        safe_path(root, "link/x.png")
    with pytest.raises(ValueError, match="name"):
        export_terrain(make_terrain(), root, ["png16"], name="../evil")
    with pytest.raises(ValueError, match="unknown export formats"):
        export_terrain(make_terrain(), root, ["png8"])


def test_unwritable_or_invalid_dir_gives_clear_error(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        target = locked / "out" if os.geteuid() != 0 else Path("/sys/worldsculpt_export_test")  # root ignores modes
        with pytest.raises(PermissionError, match="worldsculpt_export_test|locked"):
            export_terrain(make_terrain(), target, ["png16"])
    finally:
        locked.chmod(0o755)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="not a directory|file where a folder"):
        prepare_dir(tmp_path / "file")


def test_failed_write_leaves_no_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "t.png"
    write_bytes(target, b"old")
    with pytest.raises(RuntimeError, match="disk on fire"):
        with atomic_write(target) as tmp:
            tmp.write_bytes(b"half a fi")
            raise RuntimeError("disk on fire")
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["t.png"]

    from PIL import Image

    def broken_save(self: Image.Image, fp: object, *args: object, **kwargs: object) -> None:
        Path(str(fp)).write_bytes(b"\x89PNG partial")  # an encoder that dies after writing some bytes
        raise OSError("encoder crashed")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    out = tmp_path / "exp"
    with pytest.raises(OSError, match="encoder crashed"):
        export_terrain(make_terrain(), out, ["png16"])
    assert list(out.iterdir()) == []


# ------------------------------------------------------------------------------------------- Blender

BPY_SCRIPT = textwrap.dedent("""
    import json, sys
    import bpy, numpy as np
    out = {}
    bpy.ops.wm.read_factory_settings(use_empty=True)
    assert bpy.ops.import_scene.gltf(filepath=sys.argv[1]) == {"FINISHED"}
    obj = [o for o in bpy.context.scene.objects if o.type == "MESH"][0]
    co = np.empty(len(obj.data.vertices) * 3, np.float32)
    obj.data.vertices.foreach_get("co", co)
    co = co.reshape(-1, 3) @ np.array(obj.matrix_world)[:3, :3].T + np.array(obj.matrix_world)[:3, 3]
    out["n_vertices"] = len(obj.data.vertices)
    out["min"], out["max"] = co.min(0).tolist(), co.max(0).tolist()
    out["nw_corner_z"] = float(co[np.argmin(co[:, 0] - co[:, 1])][2])
    out["color_attrs"] = len(obj.data.color_attributes)
    img = bpy.data.images.load(sys.argv[2])
    px = np.empty(img.size[0] * img.size[1] * 4, np.float32)
    img.pixels.foreach_get(px)
    out["exr_size"] = list(img.size)
    out["exr"] = px.reshape(img.size[1], img.size[0], 4)[::-1, :, 0].tolist()  # Blender rows run bottom-up
    print("RESULT" + json.dumps(out))
""")


def test_blender_imports_glb_and_exr(tmp_path: Path, hf: Heightfield) -> None:
    pytest.importorskip("OpenEXR")
    export_terrain(hf, tmp_path, ["glb", "exr"])
    env = {**os.environ, "PYTHONPATH": ""}
    proc = subprocess.run([sys.executable, "-c", BPY_SCRIPT, str(tmp_path / "terrain.glb"),
                           str(tmp_path / "terrain.exr")], capture_output=True, text=True, timeout=120, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")]
    assert proc.returncode == 0 and lines, proc.stdout[-2000:] + proc.stderr[-2000:]
    res = json.loads(lines[0][len("RESULT"):])
    assert res["n_vertices"] == H * W and res["color_attrs"] >= 1
    np.testing.assert_allclose(res["min"], [-(W - 1), -(H - 1), hf.heights.min()], atol=1e-3)
    np.testing.assert_allclose(res["max"], [W - 1, H - 1, hf.heights.max()], atol=1e-3)
    assert res["nw_corner_z"] == pytest.approx(float(hf.heights[0, 0]), abs=1e-3)  # Blender sees north as +y
    assert res["exr_size"] == [W, H]
    np.testing.assert_allclose(np.array(res["exr"]), hf.heights, rtol=0, atol=1e-3)
