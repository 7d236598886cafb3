"""Heightmaps for engines and GIS: 16-bit PNG, R16/RAW, float32 EXR and GeoTIFF, each with a JSON sidecar.

16-bit formats store ``v = round((h - min) / (max - min) * 65535)``; the sidecar carries min/max
in metres so ``h = min + v * (max - min) / 65535`` recovers heights to within half a step.
EXR and GeoTIFF store float32 metres as is. Every file is in image order: row 0 = north edge,
column 0 = west edge, except ``raw`` (Unity), written bottom row first because Unity reads it so.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np

from backend.export.paths import atomic_write, safe_path, write_bytes, write_json
from backend.grids import zoom
from backend.terrain import Heightfield

UNREAL_SIZES: tuple[int, ...] = (127, 253, 505, 1009, 2017, 4033, 8129)  # Epic's recommended landscape sizes
UNITY_SIZES: tuple[int, ...] = tuple(2**n + 1 for n in range(5, 13))  # 33 .. 4097
PRESETS: dict[str, tuple[int, ...]] = {"unreal": UNREAL_SIZES, "unity": UNITY_SIZES}
# preset -> (label, what it does): the export job's ``preset`` ("none" as null) and the add-on's Preset menu
PRESET_NOTES: dict[str, tuple[str, str]] = {
    "none": ("None", "Heightmaps at the grid's own size"),
    "unreal": ("Unreal", "Resample heightmaps to an Unreal Landscape size"),
    "unity": ("Unity", "Resample to a Unity terrain size (2^n + 1), Unity tile names"),
}
HEIGHTMAP_FORMATS: dict[str, str] = {"png16": ".png", "r16": ".r16", "raw": ".raw", "exr": ".exr", "geotiff": ".tif"}
HEIGHT_FILTER = "cubic B-spline (scipy.ndimage.zoom order=3, corner-aligned)"
MASK_FILTER = "bilinear (scipy.ndimage.zoom order=1, corner-aligned), clipped to [0, 1]"
ORIENTATION = "row 0 = north edge, column 0 = west edge; world x east, y north, z up; metres"
Layout = Literal["unreal", "unity"]
ByteOrder = Literal["little", "big"]


# ---------------------------------------------------------------- sizes and resampling

def preset_size(preset: str, n: int) -> int:
    """Smallest preset size >= n (the largest if none is), so upsampling never loses detail."""
    if preset not in PRESETS:
        raise ValueError(f"unknown size preset {preset!r}; choose one of {sorted(PRESETS)}")
    sizes = PRESETS[preset]
    return next((s for s in sizes if s >= n), sizes[-1])


def resize_heightfield(hf: Heightfield, size: int) -> Heightfield:
    """Square heightfield of size x size vertices covering the same metres (cell size adjusted).

    Heights use a cubic B-spline (smooth, may overshoot by a few cm at cliffs; the sidecar
    records the resampled min/max); masks and splat weights are bilinear so they stay in [0, 1].
    """
    h, w = hf.shape
    if h != w:
        raise ValueError(f"engine size presets need a square heightfield, got {h}x{w}; crop it first")
    if size < 2:
        raise ValueError(f"resample size must be >= 2, got {size}")
    if size == h:
        return hf
    heights = zoom(hf.heights, size, 3).astype(np.float32)
    masks = {k: np.clip(zoom(m.astype(np.float32), size, 1), 0.0, 1.0) for k, m in hf.masks.items()}
    splat = None
    if hf.splat is not None:
        splat = np.clip(zoom(hf.splat.astype(np.float32), size, 1), 0.0, None)
        splat /= np.maximum(splat.sum(-1, keepdims=True), 1e-12)
    cell = hf.extent_m[0] / (size - 1)
    return Heightfield(heights, cell, masks, splat, hf.splat_names, hf.style)


# ---------------------------------------------------------------- tiles

def tile_grid(shape: tuple[int, int], tile_size: int) -> tuple[int, int]:
    """(tiles east, tiles south) for tiles of tile_size vertices that share one border row/column."""
    if tile_size < 2:
        raise ValueError(f"tile_size must be >= 2 vertices, got {tile_size}")
    step = tile_size - 1
    bad = [n for n in shape if (n - 1) % step]
    if bad:
        ok = [d + 1 for d in range(2, min(shape)) if all((n - 1) % d == 0 for n in shape)]
        raise ValueError(f"tile_size {tile_size} does not tile a {shape[0]}x{shape[1]} grid with shared "
                         f"borders ((n - 1) must be a multiple of tile_size - 1); valid sizes: {ok[-8:]}")
    return (shape[1] - 1) // step, (shape[0] - 1) // step


def iter_tiles(a: np.ndarray, tile_size: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """(column i from west, row j from north, view (tile, tile, ...)) with one shared border."""
    nx, ny = tile_grid(a.shape[:2], tile_size)
    step = tile_size - 1
    for j in range(ny):
        for i in range(nx):
            yield i, j, a[j * step: j * step + tile_size, i * step: i * step + tile_size]


def tile_suffix(i: int, j: int, ny: int, layout: Layout) -> str:
    """Unreal World Partition: ``_x{i}_y{j}`` with y from north; Unity Terrain Tools: ``_{i}_{z}``, z from south."""
    if layout == "unity":
        return f"_{i}_{ny - 1 - j}"
    return f"_x{i}_y{j}"


# ---------------------------------------------------------------- encoders

def quantise(heights: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """(H, W) float metres -> (H, W) uint16 over [lo, hi]; a flat map becomes all zeros."""
    scale = 65535.0 / (hi - lo) if hi > lo else 0.0
    q = np.rint((heights.astype(np.float64) - lo) * scale)
    return np.clip(q, 0, 65535).astype(np.uint16)


def write_png16(path: Path, q: np.ndarray) -> Path:
    """(H, W) uint16 -> 16-bit grayscale PNG."""
    from PIL import Image

    with atomic_write(path) as tmp:
        Image.fromarray(np.ascontiguousarray(q, dtype=np.uint16)).save(tmp, format="PNG", compress_level=1)
    return path


def write_raw16(path: Path, q: np.ndarray, byte_order: ByteOrder = "little", south_first: bool = False) -> Path:
    """(H, W) uint16 -> headerless 16-bit RAW/R16 in the given byte order."""
    if byte_order not in ("little", "big"):
        raise ValueError(f"byte_order must be 'little' or 'big', got {byte_order!r}")
    rows = q[::-1] if south_first else q
    return write_bytes(path, np.ascontiguousarray(rows, dtype="<u2" if byte_order == "little" else ">u2").tobytes())


def write_exr(path: Path, heights: np.ndarray) -> Path:
    """(H, W) float32 metres -> single-channel ("R") ZIP-compressed scanline EXR."""
    import OpenEXR  # optional dependency, only needed for EXR

    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    with atomic_write(path) as tmp:
        with OpenEXR.File(header, {"R": np.ascontiguousarray(heights, dtype=np.float32)}) as f:
            f.write(str(tmp))
    return path


def write_geotiff(path: Path, heights: np.ndarray, cell_size: float, top_left_xy: tuple[float, float]) -> Path:
    """(H, W) float32 metres -> uncompressed GeoTIFF in a local metric frame.

    ModelPixelScale = (cell, cell, 0); ModelTiepoint maps pixel (0, 0) to ``top_left_xy`` and
    RasterPixelIsPoint says samples are grid vertices, so the tiepoint is exact, not half a cell off.
    """
    import tifffile

    geokeys = [1, 1, 0, 4,  # version 1.1.0, 4 keys, sorted by id
               1024, 0, 1, 1,  # GTModelType = projected
               1025, 0, 1, 2,  # GTRasterType = PixelIsPoint
               3072, 0, 1, 32767,  # ProjectedCSType = user-defined (a local frame, not a map projection)
               3076, 0, 1, 9001]  # ProjLinearUnits = metre
    extratags = [
        (33550, "d", 3, (cell_size, cell_size, 0.0), True),  # ModelPixelScaleTag
        (33922, "d", 6, (0.0, 0.0, 0.0, top_left_xy[0], top_left_xy[1], 0.0), True),  # ModelTiepointTag
        (34735, "H", len(geokeys), tuple(geokeys), True),  # GeoKeyDirectoryTag
    ]
    with atomic_write(path) as tmp:
        tifffile.imwrite(tmp, np.ascontiguousarray(heights, dtype=np.float32), extratags=extratags,
                         photometric="minisblack", metadata=None)
    return path


# ---------------------------------------------------------------- sidecar and entry point

def engine_hints(lo: float, hi: float, cell: float, extent: tuple[float, float]) -> dict[str, Any]:
    """Numbers to type into each engine's import dialog so the terrain comes in at true scale."""
    rng = hi - lo
    return {
        "unreal": {"scale_xy_cm": cell * 100.0, "scale_z_percent": rng * 100.0 / 512.0,
                   "location_z_cm": (lo + rng / 2.0) * 100.0},
        "unity": {"terrain_width_m": extent[0], "terrain_length_m": extent[1], "terrain_height_m": rng,
                  "position_y_m": lo},
        "godot_terrain3d": {"vertex_spacing_m": cell, "r16_range_m": [lo, hi], "exr_height_scale": 1.0},
    }


def export_heightmaps(hf: Heightfield, out_dir: Path, formats: list[str], *, name: str,
                      tile_size: int | None = None, byte_order: ByteOrder = "little",
                      layout: Layout = "unreal", resampled_from: tuple[int, int] | None = None) -> list[Path]:
    """Write hf.heights in each format (tiled if ``tile_size``) plus one ``<file>.json`` sidecar each.

    All tiles share one min/max so 16-bit seams match exactly. Returns written paths.
    """
    unknown = [f for f in formats if f not in HEIGHTMAP_FORMATS]
    if unknown:
        raise ValueError(f"unknown heightmap formats {unknown}; choose from {sorted(HEIGHTMAP_FORMATS)}")
    h, w = hf.shape
    lo, hi = float(hf.heights.min()), float(hf.heights.max())
    cell, extent = float(hf.cell_size), hf.extent_m
    top_left = (-extent[0] / 2.0, extent[1] / 2.0)  # grid_mesh's centred frame
    q = quantise(hf.heights, lo, hi) if any(f in ("png16", "r16", "raw") for f in formats) else None
    nx, ny = tile_grid((h, w), tile_size) if tile_size else (1, 1)
    written: list[Path] = []
    for fmt in formats:
        ext = HEIGHTMAP_FORMATS[fmt]
        south_first = fmt == "raw"  # Unity reads RAW bottom row first
        source = q if fmt in ("png16", "r16", "raw") else hf.heights
        tiles = iter_tiles(source, tile_size) if tile_size else iter([(0, 0, source)])
        entries = []
        for i, j, block in tiles:
            fname = f"{name}{tile_suffix(i, j, ny, layout) if tile_size else ''}{ext}"
            path = safe_path(out_dir, fname)
            step = (tile_size - 1) if tile_size else 0
            tl = (top_left[0] + i * step * cell, top_left[1] - j * step * cell)
            if fmt == "png16":
                write_png16(path, block)
            elif fmt in ("r16", "raw"):
                write_raw16(path, block, byte_order, south_first)
            elif fmt == "exr":
                write_exr(path, block)
            else:
                write_geotiff(path, block, cell, tl)
            written.append(path)
            entries.append({"file": fname, "tile_x": i, "tile_y_from_north": j, "rows": block.shape[0],
                            "cols": block.shape[1], "top_left_xy_m": list(tl)})
        sidecar = {
            "format": fmt,
            "encoding": ("uint16 normalised: h_m = height_min_m + v * (height_max_m - height_min_m) / 65535"
                         if fmt in ("png16", "r16", "raw") else "float32 metres"),
            "byte_order": byte_order if fmt in ("r16", "raw") else ("big" if fmt == "png16" else "little"),
            "row_order": "south_first" if south_first else "north_first",
            "orientation": ORIENTATION,
            "width": w, "height": h, "cell_size_m": cell, "world_size_m": list(extent),
            "height_min_m": lo, "height_max_m": hi,
            "origin": "world (0, 0) is the centre of the full grid; top_left_xy_m is each file's first sample",
            "tiles": {"size": tile_size, "count_x": nx, "count_y": ny, "shared_border": True} if tile_size else None,
            "files": entries,
            "resampled_from": list(resampled_from) if resampled_from else None,
            "resample_filter": HEIGHT_FILTER if resampled_from else None,
            "style": hf.style,
            "engine_hints": engine_hints(lo, hi, cell, extent),
        }
        written.append(write_json(safe_path(out_dir, f"{name}{ext}.json"), sidecar))
    return written
