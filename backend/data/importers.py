"""Read real elevation files into Heightfields (and into the corpus shard format).

Values are kept: float rasters as stored, integer rasters as ``raw * vertical_scale +
vertical_offset`` (the only way a 16-bit PNG can carry metres). Supported: GeoTIFF / TIFF
(tifffile; cell size from ModelPixelScaleTag, degrees converted to metres at the tile's latitude),
16-bit (or 8-bit) PNG (Pillow), EXR (imageio, if a plugin can read it) and .npy (no pickle).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from backend.data.corpus import FORMAT_VERSION, cut_tiles, sha256, write_npz
from backend.grids import slope_degrees
from backend.simulation.artist_masks import SPLAT_NAMES, flow_mask, splat_map
from backend.simulation.flow import accumulate, d8_receivers, fill_depressions
from backend.terrain import Heightfield

IMPORT_MASK_NAMES: tuple[str, ...] = ("flow", "slope", "water")
_EARTH_M_PER_DEG = 111_320.0


def _tiff(path: Path) -> tuple[np.ndarray, float | None]:
    import tifffile

    with tifffile.TiffFile(path) as tf:
        page = tf.pages[0]
        data = page.asarray()
        tags = page.tags
        if "ModelPixelScaleTag" not in tags:
            return data, None
        sx, sy = tags["ModelPixelScaleTag"].value[:2]
        geographic = False
        if "GeoKeyDirectoryTag" in tags:
            keys = tags["GeoKeyDirectoryTag"].value
            for i in range(4, len(keys) - 3, 4):  # (key, location, count, value) after the header
                if keys[i] == 1024:  # GTModelTypeGeoKey: 2 = geographic (degrees)
                    geographic = keys[i + 3] == 2
        if not geographic:
            return data, float(math.sqrt(sx * sy))
        lat = 0.0
        if "ModelTiepointTag" in tags:
            tie = tags["ModelTiepointTag"].value
            lat = float(tie[4]) - sy * data.shape[0] / 2.0
        dx = sx * _EARTH_M_PER_DEG * math.cos(math.radians(lat))
        return data, float(math.sqrt(dx * sy * _EARTH_M_PER_DEG))


def _png(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        if im.mode not in ("I;16", "I;16B", "I;16L", "I", "L"):
            raise ValueError(f"{path}: PNG mode {im.mode!r} is not a single-channel height image")
        return np.array(im)


def _exr(path: Path) -> np.ndarray:
    import imageio.v3 as iio

    try:
        data = iio.imread(path)
    except (ImportError, OSError, ValueError, RuntimeError) as exc:
        raise RuntimeError(
            f"cannot read EXR {path}: imageio has no working EXR plugin here ({exc}). "
            "Install one: `pip install opencv-python` (imageio's opencv plugin) or "
            "`pip install imageio[freeimage]` and run `imageio_download_bin freeimage`."
        ) from exc
    return data if data.ndim == 2 else data[..., 0]


ELEVATION_SUFFIXES = (".tif", ".tiff", ".png", ".exr", ".npy")


def elevation_shape(path: str | Path) -> tuple[int, ...] | None:
    """The raster's shape from its header alone (no pixels read), so huge files can be refused cheaply;
    None where the format's reader cannot tell without decoding (EXR)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in ELEVATION_SUFFIXES:
        raise ValueError(f"unsupported elevation file type {suffix!r} ({path}); expected one of {ELEVATION_SUFFIXES}")
    if suffix in (".tif", ".tiff"):
        import tifffile

        with tifffile.TiffFile(path) as tf:
            return tuple(tf.pages[0].shape)
    if suffix == ".png":
        from PIL import Image

        with Image.open(path) as im:
            return (im.height, im.width) + ((len(im.getbands()),) if len(im.getbands()) > 1 else ())
    if suffix == ".npy":
        return tuple(np.load(path, mmap_mode="r", allow_pickle=False).shape)
    return None


def read_elevation(path: str | Path, cell_size: float | None = None, vertical_scale: float = 1.0,
                   vertical_offset: float = 0.0) -> Heightfield:
    """Read one elevation raster into a Heightfield (heights float32, metres).

    cell_size: metres per cell; required unless the file says (GeoTIFF pixel scale).
    vertical_scale / vertical_offset: applied to integer rasters (16-bit PNG, integer TIFF, .npy).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    file_cell: float | None = None
    if suffix in (".tif", ".tiff"):
        data, file_cell = _tiff(path)
    elif suffix == ".png":
        data = _png(path)
    elif suffix == ".exr":
        data = _exr(path)
    elif suffix == ".npy":
        data = np.load(path, allow_pickle=False)
    else:
        raise ValueError(f"unsupported elevation file type {suffix!r} ({path})")
    data = np.asarray(data)
    if data.ndim != 2:
        raise ValueError(f"{path}: expected a single-band 2D raster, got shape {data.shape}")
    if np.issubdtype(data.dtype, np.integer):
        heights = data.astype(np.float64) * vertical_scale + vertical_offset
    else:
        heights = data.astype(np.float64)
    size = cell_size if cell_size is not None else file_cell
    if size is None:
        raise ValueError(f"{path}: the file does not state its cell size; pass cell_size (metres)")
    return Heightfield(heights.astype(np.float32), float(size), style="imported")


def derive_masks(hf: Heightfield) -> Heightfield:
    """Add the masks computable from heights alone (flow, slope, water) and a splat map."""
    z = torch.from_numpy(hf.heights.astype(np.float64))
    filled = fill_depressions(z)
    receiver, _, _ = d8_receivers(filled[None], hf.cell_size)
    area = accumulate(receiver, torch.full_like(filled[None], hf.cell_size ** 2))[0].numpy()
    flow = flow_mask(area, hf.cell_size)
    water = ((hf.heights < 0) | ((filled.numpy() - hf.heights) > 0.5)).astype(np.float32)
    masks = {"flow": flow, "slope": np.clip(slope_degrees(hf.heights, hf.cell_size) / 60.0, 0, 1).astype(np.float32),
             "water": water}
    splat = splat_map(hf.heights, hf.cell_size, flow, np.zeros_like(flow))
    return Heightfield(hf.heights, hf.cell_size, masks, splat, SPLAT_NAMES, hf.style)


def import_to_corpus(paths: Sequence[str | Path], out: str | Path, tile: int = 64,
                     cell_size: float | None = None, vertical_scale: float = 1.0) -> dict[str, object]:
    """Tile real elevation files into one shard (``imported-00000.npz``) plus manifest.json.

    Same arrays as the simulated corpus (see backend.data.corpus), with style "imported",
    mask_names = IMPORT_MASK_NAMES and no params; map_id is the index in ``paths``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    parts = []
    for map_id, p in enumerate(paths):
        hf = derive_masks(read_elevation(p, cell_size, vertical_scale))
        tiles = cut_tiles(hf, tile, IMPORT_MASK_NAMES)
        n = len(tiles["heights"])
        tiles.update(map_id=np.full(n, map_id, np.int32), style=np.zeros(n, np.int16),
                     cell_size=np.full(n, hf.cell_size, np.float32))
        parts.append(tiles)
    if not parts:
        raise ValueError("no files to import")
    arrays = {k: np.concatenate([t[k] for t in parts]) for k in parts[0]}
    arrays.update(mask_names=np.array(IMPORT_MASK_NAMES), splat_names=np.array(SPLAT_NAMES),
                  style_names=np.array(["imported"]))
    name = "imported-00000.npz"
    size = write_npz(out / name, arrays)
    manifest = {"format_version": FORMAT_VERSION, "tile": tile, "sources": [str(p) for p in paths],
                "mask_names": list(IMPORT_MASK_NAMES), "splat_names": list(SPLAT_NAMES),
                "shards": {"imported": [{"file": name, "tiles": int(len(arrays["heights"])), "bytes": size,
                                         "sha256": sha256(out / name)}]}}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest
