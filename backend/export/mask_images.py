"""Material weights and masks as 8-bit PNGs that engines paint with.

Splat weights go 4 layers per RGBA image (Unreal/Unity/Terrain3D all blend in groups of four);
each mask (flow, wear, deposition, slope, ...) is its own grayscale image; the style map is an
8-bit index image with its legend in the sidecar. Same image order as the heightmaps.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from backend.export.heightmaps import ORIENTATION, Layout, iter_tiles, tile_grid, tile_suffix
from backend.export.paths import atomic_write, safe_path, write_json
from backend.grids import slope_degrees
from backend.terrain import Heightfield

_SAFE = re.compile(r"[^A-Za-z0-9_-]+")


def to_u8(a: np.ndarray) -> np.ndarray:
    """[0, 1] floats -> uint8, rounded (values outside are clipped)."""
    return np.rint(np.clip(a, 0.0, 1.0) * 255.0).astype(np.uint8)


def slope_mask(heights: np.ndarray, cell_size: float) -> np.ndarray:
    """(H, W) slope in degrees / 90, for terrains that arrive without a slope mask."""
    return (slope_degrees(heights, cell_size, np.float32) / 90.0).astype(np.float32)


def splat_images(splat: np.ndarray) -> list[np.ndarray]:
    """(H, W, M) weights -> ceil(M/4) images (H, W, 4) uint8; unused channels are 0."""
    h, w, m = splat.shape
    padded = np.zeros((h, w, -(-m // 4) * 4), dtype=np.float32)
    padded[..., :m] = splat
    return [to_u8(padded[..., k:k + 4]) for k in range(0, padded.shape[-1], 4)]


def style_map(hf: Heightfield) -> tuple[np.ndarray, dict[int, str]]:
    """(H, W) uint8 style index and its legend (0 = none).

    Masks named ``style_<name>`` give per-cell styles (argmax); without them the whole map is
    the terrain's single ``hf.style``.
    """
    names = sorted(k for k in hf.masks if k.startswith("style_"))
    if names:
        stack = np.stack([hf.masks[k] for k in names], -1)
        idx = np.where(stack.max(-1) > 0, stack.argmax(-1) + 1, 0).astype(np.uint8)
        return idx, {0: "none", **{i + 1: k[len("style_"):] for i, k in enumerate(names)}}
    return np.full(hf.shape, 1 if hf.style else 0, dtype=np.uint8), {0: "none", 1: hf.style or "none"}


def _write_png(path: Path, img: np.ndarray) -> Path:
    from PIL import Image

    with atomic_write(path) as tmp:
        Image.fromarray(np.ascontiguousarray(img)).save(tmp, format="PNG", compress_level=1)
    return path


def export_masks(hf: Heightfield, out_dir: Path, *, name: str, tile_size: int | None = None,
                 layout: Layout = "unreal") -> list[Path]:
    """Write splat RGBA PNGs, one grayscale PNG per mask (slope added if missing), the style map and
    ``<name>_masks.json`` saying which layer sits in which file and channel. Returns written paths.
    """
    masks = dict(hf.masks)
    slope_computed = "slope" not in masks
    masks.setdefault("slope", slope_mask(hf.heights, hf.cell_size))
    images: dict[str, np.ndarray] = {}
    layers: list[dict[str, object]] = []
    if hf.splat is not None:
        m = hf.splat.shape[-1]
        if hf.splat.shape[:2] != hf.shape:
            raise ValueError(f"splat has shape {hf.splat.shape}, heights {hf.shape}")
        layer_names = hf.splat_names if len(hf.splat_names) == m else tuple(f"layer{k}" for k in range(m))
        for k, img in enumerate(splat_images(hf.splat)):
            images[f"splat{k}"] = img
        layers = [{"name": n, "files": f"splat{k // 4}", "channel": "RGBA"[k % 4]} for k, n in enumerate(layer_names)]
    seen: set[str] = set()
    for key, mask in masks.items():
        safe = _SAFE.sub("_", key)
        if safe in seen:
            raise ValueError(f"mask name {key!r} collides with another after sanitising to {safe!r}")
        seen.add(safe)
        images[f"mask_{safe}"] = to_u8(mask)
    style, legend = style_map(hf)
    images["style"] = style

    nx, ny = tile_grid(hf.shape, tile_size) if tile_size else (1, 1)
    written: list[Path] = []
    files: dict[str, list[str]] = {}
    for key, img in images.items():
        tiles = iter_tiles(img, tile_size) if tile_size else iter([(0, 0, img)])
        files[key] = []
        for i, j, block in tiles:
            fname = f"{name}_{key}{tile_suffix(i, j, ny, layout) if tile_size else ''}.png"
            written.append(_write_png(safe_path(out_dir, fname), block))
            files[key].append(fname)
    sidecar = {
        "format": "png8",
        "encoding": "uint8 = round(weight * 255); weights in [0, 1]",
        "orientation": ORIENTATION,
        "width": hf.shape[1], "height": hf.shape[0], "cell_size_m": float(hf.cell_size),
        "splat_layers": [{**layer, "files": files[str(layer["files"])]} for layer in layers],
        "masks": {k: files[f"mask_{_SAFE.sub('_', k)}"] for k in masks},
        "slope_encoding": "slope_degrees / 90" if slope_computed else "as provided by the terrain",
        "style_map": {"files": files["style"], "legend": {str(k): v for k, v in legend.items()}},
        "tiles": {"size": tile_size, "count_x": nx, "count_y": ny, "shared_border": True} if tile_size else None,
    }
    written.append(write_json(safe_path(out_dir, f"{name}_masks.json"), sidecar))
    return written
