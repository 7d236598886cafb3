"""Export a Heightfield for engines and DCC tools; ``export_terrain`` is the one entry point.

Formats: heightmaps ``png16``, ``r16``, ``raw`` (Unity), ``exr``, ``geotiff``; ``masks`` (splat
RGBA + grayscale masks + style map); meshes ``glb``, ``gltf``, ``obj``, ``ply``, ``stl``. Every file
is written atomically inside ``out_dir`` with a JSON sidecar; see docs/EXPORT.md for engine steps.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from backend.export.heightmaps import (HEIGHTMAP_FORMATS, PRESET_NOTES, PRESETS, ByteOrder, Layout,
                                       export_heightmaps, preset_size, resize_heightfield)
from backend.export.mask_images import export_masks
from backend.export.meshes import MESH_FORMATS, Colors, Decimation, export_meshes, write_mesh
from backend.export.paths import atomic_write, prepare_dir, safe_path
from backend.terrain import Heightfield

FORMATS: tuple[str, ...] = (*HEIGHTMAP_FORMATS, "masks", *MESH_FORMATS)
# format -> (label, what it writes): the add-on's Formats menu (hello_reply), in FORMATS' order
FORMAT_NOTES: dict[str, tuple[str, str]] = {
    "png16": ("PNG 16-bit", "16-bit grayscale heightmap + JSON sidecar (Unreal)"),
    "r16": ("R16", "Raw 16-bit heightmap"),
    "raw": ("RAW (Unity)", "Raw 16-bit heightmap, Unity row order"),
    "exr": ("EXR", "32-bit float heightmap in metres"),
    "geotiff": ("GeoTIFF", "32-bit float GeoTIFF in metres"),
    "masks": ("Masks", "Splat map and material masks"),
    "glb": ("glTF Binary", "Terrain mesh (.glb)"),
    "gltf": ("glTF", "Terrain mesh (.gltf)"),
    "obj": ("OBJ", "Terrain mesh (.obj)"),
    "ply": ("PLY", "Terrain mesh (.ply)"),
    "stl": ("STL", "Terrain mesh (.stl)"),
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")

__all__ = ["FORMATS", "FORMAT_NOTES", "PRESET_NOTES", "export_terrain", "atomic_write", "prepare_dir", "safe_path",
           "write_mesh"]


def export_terrain(hf: Heightfield, out_dir: str | os.PathLike[str], formats: list[str] | tuple[str, ...] = ("png16",),
                   *, name: str = "terrain", preset: str | None = None, size: int | None = None,
                   tile_size: int | None = None, byte_order: ByteOrder = "little",
                   target_triangles: int | None = None, decimation: Decimation = "quadric",
                   chunk_size: int | None = None, colors: Colors = "auto", y_up: bool = False) -> list[Path]:
    """Write ``hf`` in each of ``formats`` under ``out_dir``; return every written path (sidecars included).

    preset: "unreal" or "unity" resamples heightmaps and masks to the smallest engine size >= the
      grid (``size`` overrides it), keeping world metres; "unity" also names tiles
      ``name_X_Z`` (Terrain Tools batch import). Meshes always use the source grid.
    tile_size: vertices per heightmap/mask tile side; tiles share one border row/column.
    target_triangles / decimation / chunk_size / colors / y_up: see ``meshes.export_meshes``.
    """
    formats = list(dict.fromkeys(formats))
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ValueError(f"unknown export formats {unknown or formats}; choose from {list(FORMATS)}")
    if not _NAME.match(name) or ".." in name:
        raise ValueError(f"export name {name!r} must be 1-100 letters, digits, '_', '-', '.', no path parts")
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {sorted(PRESETS)}")
    if byte_order not in ("little", "big"):
        raise ValueError(f"byte_order must be 'little' or 'big', got {byte_order!r}")
    root = prepare_dir(out_dir)
    layout: Layout = "unity" if preset == "unity" else "unreal"

    image_formats = [f for f in formats if f in HEIGHTMAP_FORMATS]
    written: list[Path] = []
    if image_formats or "masks" in formats:
        target = size if size is not None else (preset_size(preset, max(hf.shape)) if preset else None)
        if target is not None and preset is not None and target not in PRESETS[preset]:
            raise ValueError(f"size {target} is not a {preset} size {PRESETS[preset]}")
        sized = resize_heightfield(hf, target) if target is not None else hf
        resampled_from = hf.shape if sized is not hf else None
        if image_formats:
            written += export_heightmaps(sized, root, image_formats, name=name, tile_size=tile_size,
                                         byte_order=byte_order, layout=layout, resampled_from=resampled_from)
        if "masks" in formats:
            written += export_masks(sized, root, name=name, tile_size=tile_size, layout=layout)
    mesh_formats = [f for f in formats if f in MESH_FORMATS]
    if mesh_formats:
        written += export_meshes(hf, root, mesh_formats, name=name, target_triangles=target_triangles,
                                 decimation=decimation, chunk_size=chunk_size, colors=colors, y_up=y_up)
    return written
