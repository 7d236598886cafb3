"""Terrain meshes for DCC tools and engines: GLB/glTF, OBJ, PLY, STL through trimesh.

Frame: metres, x east, y north, z up, origin at the centre of the whole grid (chunks keep the
world frame, so they line up when imported together). glTF is written Y-up as its spec requires
(x, z, -y), which Blender, Unity and Godot importers turn back into the right orientation; the
other formats stay Z-up unless ``y_up``. Vertex colours come from the splat map (material
palette) or a height ramp; STL has no colours.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal

import numpy as np
from scipy import ndimage

from backend.export.heightmaps import iter_tiles, tile_grid
from backend.export.paths import atomic_write, safe_path, write_json
from backend.meshing.heightfield import grid_faces, grid_normals, grid_vertices
from backend.terrain import Heightfield

MESH_FORMATS: tuple[str, ...] = ("glb", "gltf", "obj", "ply", "stl")
Colors = Literal["auto", "splat", "height", "none"]
Decimation = Literal["quadric", "grid"]

# Base colours (linear-ish sRGB 0..1) for material names the generators use; others get a hashed grey-green.
MATERIAL_COLORS: dict[str, tuple[float, float, float]] = {
    "grass": (0.30, 0.45, 0.18), "forest": (0.16, 0.30, 0.12), "rock": (0.45, 0.42, 0.40),
    "cliff": (0.38, 0.35, 0.33), "snow": (0.95, 0.96, 0.98), "ice": (0.80, 0.90, 0.97),
    "sand": (0.86, 0.78, 0.55), "dirt": (0.45, 0.33, 0.22), "soil": (0.45, 0.33, 0.22),
    "gravel": (0.55, 0.52, 0.48), "mud": (0.35, 0.28, 0.20), "water": (0.15, 0.30, 0.45),
    "scree": (0.52, 0.50, 0.47), "lava": (0.25, 0.10, 0.08), "ash": (0.30, 0.30, 0.30),
}
# Height ramp: fraction of the height range -> colour (lowland green, hills brown, rock grey, snow).
RAMP_STOPS = np.array([0.0, 0.35, 0.65, 0.85, 1.0])
RAMP_COLORS = np.array([[0.20, 0.40, 0.15], [0.45, 0.40, 0.25], [0.45, 0.43, 0.40],
                        [0.60, 0.60, 0.60], [0.95, 0.95, 0.97]])


def material_color(name: str) -> tuple[float, float, float]:
    """A stable colour for a material name: a known one, else derived from its hash (no randomness)."""
    key = name.lower()
    for known, rgb in MATERIAL_COLORS.items():
        if known in key:
            return rgb
    d = hashlib.sha256(key.encode()).digest()
    return (0.3 + d[0] / 640.0, 0.3 + d[1] / 640.0, 0.2 + d[2] / 640.0)


def color_image(hf: Heightfield, colors: Colors) -> np.ndarray | None:
    """(H, W, 3) float32 colours in [0, 1], or None for ``colors='none'``."""
    if colors == "none":
        return None
    if colors in ("auto", "splat") and hf.splat is not None:
        m = hf.splat.shape[-1]
        names = hf.splat_names if len(hf.splat_names) == m else tuple(f"layer{k}" for k in range(m))
        palette = np.array([material_color(n) for n in names], dtype=np.float32)  # (M, 3)
        return np.clip(hf.splat.astype(np.float32) @ palette, 0.0, 1.0)
    if colors == "splat":
        raise ValueError("colors='splat' but the heightfield has no splat map")
    if colors not in ("auto", "height"):
        raise ValueError(f"unknown colors {colors!r}; choose auto, splat, height or none")
    lo, hi = float(hf.heights.min()), float(hf.heights.max())
    t = (hf.heights - lo) / (hi - lo) if hi > lo else np.zeros_like(hf.heights)
    return np.stack([np.interp(t, RAMP_STOPS, RAMP_COLORS[:, c]) for c in range(3)], -1).astype(np.float32)


def sample_grid(img: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Bilinear lookup of img (H, W, C) at fractional (rows, cols) (N,) -> (N, C)."""
    return np.stack([ndimage.map_coordinates(img[..., c], [rows, cols], order=1, mode="nearest")
                     for c in range(img.shape[-1])], -1)


def decimate_quadric(vertices: np.ndarray, faces: np.ndarray, target: int) -> tuple[np.ndarray, np.ndarray]:
    """Quadric edge-collapse (fast-simplification) down to about ``target`` triangles.

    The open border is kept fixed so neighbouring chunks still meet without cracks.
    """
    import fast_simplification  # optional dependency, imported only when decimating

    if target >= len(faces):
        return vertices, faces
    v, f = fast_simplification.simplify(vertices.astype(np.float64), np.array(faces, dtype=np.int32), target_count=int(target),
                                        preserve_border=True)
    return v.astype(np.float32), f.astype(np.int32)


def grid_shape_for(shape: tuple[int, int], target: int) -> tuple[int, int]:
    """(h, w) vertices, same aspect as ``shape``, whose grid has about ``target`` triangles."""
    h, w = shape
    s = min(1.0, float(np.sqrt(target / (2.0 * (h - 1) * (w - 1)))))
    return max(2, round((h - 1) * s) + 1), max(2, round((w - 1) * s) + 1)


def heightfield_mesh(hf: Heightfield, *, rows: slice = slice(None), cols: slice = slice(None),
                     target_triangles: int | None = None, decimation: Decimation = "quadric",
                     colors: Colors = "auto") -> dict[str, np.ndarray | None]:
    """One (optionally decimated) mesh of the block hf[rows, cols] in the world frame.

    Returns ``vertices`` (N, 3) float32, ``faces`` (F, 3) int32, ``normals`` (N, 3) | None,
    ``colors`` (N, 4) uint8 | None. Grid decimation resamples the block bilinearly to a coarser
    grid (exact borders, shared with neighbours); quadric decimation collapses edges.
    """
    h, w = hf.shape
    r0, r1, _ = rows.indices(h)
    c0, c1, _ = cols.indices(w)
    block = hf.heights[r0:r1, c0:c1]
    bh, bw = block.shape
    cs = hf.cell_size
    origin = (-(w - 1) / 2 * cs + c0 * cs, (h - 1) / 2 * cs - r0 * cs)  # world xy of the block's first vertex
    img = color_image(hf, colors)
    if target_triangles is not None and target_triangles < 2:
        raise ValueError(f"target_triangles must be >= 2, got {target_triangles}")
    full = 2 * (bh - 1) * (bw - 1)

    if target_triangles is not None and target_triangles < full and decimation == "grid":
        gh, gw = grid_shape_for((bh, bw), target_triangles)
        rr = np.linspace(r0, r1 - 1, gh)
        cc = np.linspace(c0, c1 - 1, gw)
        R, C = np.meshgrid(rr, cc, indexing="ij")
        z = ndimage.map_coordinates(hf.heights, [R.ravel(), C.ravel()], order=1, mode="nearest").reshape(gh, gw)
        vertices = np.empty((gh * gw, 3), dtype=np.float32)
        vertices[:, 0] = (-(w - 1) / 2 + C.ravel()) * cs
        vertices[:, 1] = ((h - 1) / 2 - R.ravel()) * cs
        vertices[:, 2] = z.ravel()
        faces = np.asarray(grid_faces(gh, gw))
        normals = grid_normals(z, (cs * (bh - 1) / (gh - 1), cs * (bw - 1) / (gw - 1)))
        rows_f, cols_f = R.ravel(), C.ravel()
    else:
        vertices = grid_vertices(block, cs, origin)
        faces = np.asarray(grid_faces(bh, bw))
        normals: np.ndarray | None = grid_normals(block, cs)
        rows_f = cols_f = None
        if target_triangles is not None and target_triangles < full:
            if decimation != "quadric":
                raise ValueError(f"unknown decimation {decimation!r}; choose quadric or grid")
            vertices, faces = decimate_quadric(vertices, faces, target_triangles)
            normals = None  # trimesh recomputes them from the new faces
            cols_f = (vertices[:, 0] / cs + (w - 1) / 2).astype(np.float64)
            rows_f = ((h - 1) / 2 - vertices[:, 1] / cs).astype(np.float64)

    vc = None
    if img is not None:
        if rows_f is None:
            rgb = img[r0:r1, c0:c1].reshape(-1, 3)
        else:
            rgb = sample_grid(img, rows_f, cols_f)
        vc = np.empty((len(vertices), 4), dtype=np.uint8)
        vc[:, :3] = np.rint(np.clip(rgb, 0, 1) * 255)
        vc[:, 3] = 255
    return {"vertices": vertices, "faces": faces, "normals": normals, "colors": vc}


def to_y_up(a: np.ndarray) -> np.ndarray:
    """(N, 3) x east, y north, z up -> glTF's (x, y up, z south); a rotation, so winding is kept."""
    return np.ascontiguousarray(np.stack([a[:, 0], a[:, 2], -a[:, 1]], -1), dtype=np.float32)


def write_mesh(path: Path, fmt: str, vertices: np.ndarray, faces: np.ndarray,
               normals: np.ndarray | None = None, colors: np.ndarray | None = None, y_up: bool = False) -> Path:
    """Atomically write one mesh (vertices (N, 3) metres z-up, faces (F, 3), colors (N, 4) uint8).

    Also used for voxel meshes from ``backend.meshing.voxel_mesh``.
    """
    import trimesh
    from trimesh.exchange import gltf, ply

    if fmt not in MESH_FORMATS:
        raise ValueError(f"unknown mesh format {fmt!r}; choose from {MESH_FORMATS}")
    if fmt in ("glb", "gltf") or y_up:
        vertices = to_y_up(vertices)
        normals = to_y_up(normals) if normals is not None else None
    kwargs: dict[str, Any] = {}
    if normals is not None:
        kwargs["vertex_normals"] = normals
    if colors is not None and fmt != "stl":
        kwargs["vertex_colors"] = colors
    mesh = trimesh.Trimesh(vertices=vertices, faces=faces, process=False, validate=False, **kwargs)
    if fmt == "glb":
        data: bytes = gltf.export_glb(mesh, include_normals=True, unitize_normals=False)
    elif fmt == "gltf":
        files = gltf.export_gltf(mesh, include_normals=True, unitize_normals=False, embed_buffers=True)
        data = files["model.gltf"]
    elif fmt == "ply":
        data = ply.export_ply(mesh, encoding="binary", vertex_normal=normals is not None)
    elif fmt == "obj":
        data = mesh.export(file_type="obj", include_normals=False, include_color=colors is not None,
                           include_texture=False).encode("utf-8")
    else:
        data = mesh.export(file_type="stl")
    with atomic_write(path) as tmp:
        tmp.write_bytes(data)
    return path


def export_meshes(hf: Heightfield, out_dir: Path, formats: list[str], *, name: str,
                  target_triangles: int | None = None, decimation: Decimation = "quadric",
                  chunk_size: int | None = None, colors: Colors = "auto", y_up: bool = False) -> list[Path]:
    """Write the terrain mesh in each format, whole or as chunks ``{name}_x{i}_y{j}.{ext}`` (i from
    west, j from north, chunk_size vertices with one shared border row), plus ``{name}_mesh.json``.

    ``target_triangles`` is for the whole terrain; chunks get a share proportional to their area.
    """
    unknown = [f for f in formats if f not in MESH_FORMATS]
    if unknown:
        raise ValueError(f"unknown mesh formats {unknown}; choose from {list(MESH_FORMATS)}")
    if decimation not in ("quadric", "grid"):
        raise ValueError(f"unknown decimation {decimation!r}; choose quadric or grid")
    h, w = hf.shape
    full = 2 * (h - 1) * (w - 1)
    if chunk_size:
        nx, ny = tile_grid(hf.shape, chunk_size)
        step = chunk_size - 1
        blocks = [(i, j, slice(j * step, j * step + chunk_size), slice(i * step, i * step + chunk_size))
                  for i, j, _ in iter_tiles(hf.heights, chunk_size)]
    else:
        nx = ny = 1
        blocks = [(0, 0, slice(None), slice(None))]
    written: list[Path] = []
    entries = []
    for i, j, rs, cs_ in blocks:
        r0, r1, _ = rs.indices(h)
        c0, c1, _ = cs_.indices(w)
        share = None
        if target_triangles is not None:
            share = max(2, round(target_triangles * 2 * (r1 - r0 - 1) * (c1 - c0 - 1) / full))
        m = heightfield_mesh(hf, rows=rs, cols=cs_, target_triangles=share, decimation=decimation, colors=colors)
        stem = f"{name}_x{i}_y{j}" if chunk_size else name
        for fmt in formats:
            written.append(write_mesh(safe_path(out_dir, f"{stem}.{fmt}"), fmt, m["vertices"], m["faces"],
                                      m["normals"], m["colors"], y_up))
        entries.append({"stem": stem, "chunk_x": i, "chunk_y_from_north": j, "vertices": len(m["vertices"]),
                        "triangles": len(m["faces"])})
    sidecar = {
        "formats": list(formats),
        "units": "metres",
        "frame": "x east, y north, z up; origin at the centre of the whole grid",
        "up_axis": {f: ("Y (glTF spec: x, z, -y)" if f in ("glb", "gltf") or y_up else "Z") for f in formats},
        "cell_size_m": float(hf.cell_size), "grid": [h, w], "world_size_m": list(hf.extent_m),
        "height_min_m": float(hf.heights.min()), "height_max_m": float(hf.heights.max()),
        "decimation": None if target_triangles is None else {"method": decimation, "target_triangles": target_triangles},
        "colors": colors if colors != "auto" else ("splat" if hf.splat is not None else "height"),
        "chunks": {"size": chunk_size, "count_x": nx, "count_y": ny, "shared_border": True} if chunk_size else None,
        "files": entries,
    }
    written.append(write_json(safe_path(out_dir, f"{name}_mesh.json"), sidecar))
    return written
