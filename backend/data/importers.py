"""Read real elevation files into Heightfields (and into the corpus shard format).

Values are kept: float rasters as stored, integer rasters as ``raw * vertical_scale +
vertical_offset`` (the only way a 16-bit PNG can carry metres); no-data cells become NaN.
Supported: GeoTIFF / TIFF (tifffile, LZW/Deflate through imagecodecs; cell size from
ModelPixelScaleTag, degrees converted to metres at the tile's latitude; GDAL_NODATA honoured),
16-bit (or 8-bit) PNG (Pillow), EXR (OpenEXR), .npy and .npz degree grids
such as matplotlib's sample DEMs (no pickle).
"""

from __future__ import annotations

import json
import math
import zipfile
from dataclasses import dataclass
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
ELEVATION_SUFFIXES = (".tif", ".tiff", ".png", ".exr", ".npy", ".npz")
NPZ_HEIGHT_KEYS: tuple[str, ...] = ("elevation", "topo", "heights")  # the first present is the raster
NPZ_SPACING_RTOL = 0.05  # Mercator-spaced latitudes over 2 degrees (matplotlib's topobathy) vary 4 %


@dataclass(frozen=True)
class ElevationGrid:
    """A raster as the file stores it: heights (row 0 north, no-data as NaN) and metres per cell per axis.

    cell_x_m / cell_y_m are None where the file does not say; geographic (degree) rasters have them
    converted at the raster's mid-latitude, so they differ where the pixels are not square on the ground.
    """

    heights: np.ndarray  # (H, W) float32 metres, NaN = no data
    cell_x_m: float | None  # east-west
    cell_y_m: float | None  # north-south

    @property
    def cell_size(self) -> float | None:
        """One cell size for a square-cell Heightfield: the geometric mean, so a cell keeps its area."""
        if self.cell_x_m is None or self.cell_y_m is None:
            return None
        return math.sqrt(self.cell_x_m * self.cell_y_m)


def metres_per_degree(lat_deg: float) -> tuple[float, float]:
    """(east-west, north-south) metres per degree on the WGS84 ellipsoid at ``lat_deg`` (series to ~1 cm)."""
    phi = math.radians(lat_deg)
    east = 111_412.84 * math.cos(phi) - 93.5 * math.cos(3 * phi) + 0.118 * math.cos(5 * phi)
    north = 111_132.92 - 559.82 * math.cos(2 * phi) + 1.175 * math.cos(4 * phi) - 0.0023 * math.cos(6 * phi)
    return east, north


def _geo_keys(tags: object) -> dict[int, int]:
    """GeoKeyDirectoryTag as {key id: short value} (entries after the 4-short header, 4 shorts each)."""
    if "GeoKeyDirectoryTag" not in tags:  # type: ignore[operator]
        return {}
    keys = tags["GeoKeyDirectoryTag"].value  # type: ignore[index]
    return {keys[i]: keys[i + 3] for i in range(4, len(keys) - 3, 4) if keys[i + 1] == 0}


def _tiff(path: Path) -> tuple[np.ndarray, float | None, float | None, float | None]:
    """(raw raster, cell x m, cell y m, GDAL no-data value). LZW/Deflate need the imagecodecs package."""
    import tifffile

    with tifffile.TiffFile(path) as tf:
        page = tf.pages[0]
        try:
            data = page.asarray()
        except ValueError as exc:  # e.g. "<COMPRESSION.LZW: 5> requires the 'imagecodecs' package"
            raise ValueError(f"cannot decode {path}: {exc}") from exc
        tags = page.tags
        nodata = float(str(tags["GDAL_NODATA"].value).strip("\x00 ")) if "GDAL_NODATA" in tags else None
        if "ModelPixelScaleTag" not in tags:
            return data, None, None, nodata
        sx, sy = (float(v) for v in tags["ModelPixelScaleTag"].value[:2])
        if _geo_keys(tags).get(1024) != 2:  # GTModelTypeGeoKey 2 = geographic: the scale is in degrees
            return data, sx, sy, nodata
        top = float(tags["ModelTiepointTag"].value[4]) if "ModelTiepointTag" in tags else sy * data.shape[0] / 2
        mid_lat = top - sy * data.shape[0] / 2  # no tiepoint: centred on the equator
        east, north = metres_per_degree(mid_lat)
        return data, sx * east, sy * north, nodata


def _npz(path: Path) -> tuple[np.ndarray, float | None, float | None]:
    """Degree grids saved as .npz (matplotlib's sample DEMs): (raster row 0 north, cell x m, cell y m).

    Spacing from scalars ``dx, dy`` (degrees) with ``ymin, ymax``, or from coordinate vectors
    ``longitude, latitude`` (evenly spaced within ``NPZ_SPACING_RTOL``; rows are flipped when latitude
    grows with the row). The mean spacing gives the cell size at the grid's mid-latitude.
    """
    with np.load(path, allow_pickle=False) as d:
        key = next((k for k in NPZ_HEIGHT_KEYS if k in d.files), None)
        if key is None:
            raise ValueError(f"{path}: no height array; expected one of {NPZ_HEIGHT_KEYS}, found {d.files}")
        data = d[key]
        if {"dx", "dy", "ymin", "ymax"} <= set(d.files):
            east, north = metres_per_degree((float(d["ymin"]) + float(d["ymax"])) / 2.0)
            return data, float(d["dx"]) * east, float(d["dy"]) * north
        if {"longitude", "latitude"} <= set(d.files):
            lon, lat = d["longitude"].astype(np.float64), d["latitude"].astype(np.float64)
            steps = (np.diff(lon), np.diff(lat))
            if not all(np.allclose(s, s.mean(), rtol=NPZ_SPACING_RTOL) for s in steps):
                raise ValueError(f"{path}: longitude/latitude steps vary by more than {NPZ_SPACING_RTOL:.0%}; "
                                 "cannot give one cell size")
            east, north = metres_per_degree(float(lat.mean()))
            rows = data[::-1] if steps[1].mean() > 0 else data
            return rows, abs(steps[0].mean()) * east, abs(steps[1].mean()) * north
        return data, None, None


def _png(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        if im.mode not in ("I;16", "I;16B", "I;16L", "I", "L"):
            raise ValueError(f"{path}: PNG mode {im.mode!r} is not a single-channel height image")
        return np.array(im)


def _exr(path: Path) -> np.ndarray:
    """The height channel of an EXR, read with OpenEXR (a core dependency: the exporters write EXR with it)."""
    import OpenEXR

    try:
        with OpenEXR.File(str(path)) as f:
            channels = f.channels()
            name = next((c for c in ("R", "Y", "Z", "RGB", "RGBA") if c in channels), next(iter(channels)))
            data = np.array(channels[name].pixels)
    except (OSError, RuntimeError, StopIteration) as exc:
        raise RuntimeError(f"cannot read EXR {path}: {exc}") from exc
    return data if data.ndim == 2 else data[..., 0]


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in ELEVATION_SUFFIXES:
        raise ValueError(f"unsupported elevation file type {suffix!r} ({path}); expected one of {ELEVATION_SUFFIXES}")
    return suffix


def _npz_shape(path: Path) -> tuple[int, ...]:
    """Shape of the height array in an .npz from its .npy header (nothing decompressed beyond it)."""
    with zipfile.ZipFile(path) as zf:
        names = {n.removesuffix(".npy") for n in zf.namelist()}
        key = next((k for k in NPZ_HEIGHT_KEYS if k in names), None)
        if key is None:
            raise ValueError(f"{path}: no height array; expected one of {NPZ_HEIGHT_KEYS}")
        with zf.open(f"{key}.npy") as f:
            version = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            return tuple(read(f)[0])


def elevation_shape(path: str | Path) -> tuple[int, ...] | None:
    """The raster's shape from its header alone (no pixels read), so huge files can be refused cheaply;
    None where the format's reader cannot tell without decoding (EXR)."""
    path = Path(path)
    suffix = _suffix(path)
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
    if suffix == ".npz":
        return _npz_shape(path)
    return None


def _trim_nodata(z: np.ndarray) -> np.ndarray:
    """Drop border rows and columns that hold no data at all (a reprojected tile's empty frame)."""
    valid = np.isfinite(z)
    rows, cols = np.flatnonzero(valid.any(1)), np.flatnonzero(valid.any(0))
    if rows.size == 0:
        raise ValueError("the raster holds no data: every cell is no-data")
    return z[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def read_grid(path: str | Path, vertical_scale: float = 1.0, vertical_offset: float = 0.0) -> ElevationGrid:
    """Read one elevation raster as stored: values kept, GDAL no-data (and NaN) as NaN, all-no-data
    border rows/columns trimmed, cell size per axis where the file states it (GeoTIFF pixel scale,
    degrees converted at the raster's latitude; .npz degree spacing).

    vertical_scale / vertical_offset: applied to integer rasters (16-bit PNG, integer TIFF, .npy/.npz).
    """
    path = Path(path)
    suffix = _suffix(path)
    cell_x = cell_y = nodata = None
    if suffix in (".tif", ".tiff"):
        data, cell_x, cell_y, nodata = _tiff(path)
    elif suffix == ".npz":
        data, cell_x, cell_y = _npz(path)
    elif suffix == ".png":
        data = _png(path)
    elif suffix == ".exr":
        data = _exr(path)
    else:
        data = np.load(path, allow_pickle=False)
    data = np.asarray(data)
    if data.ndim != 2:
        raise ValueError(f"{path}: expected a single-band 2D raster, got shape {data.shape}")
    heights = data.astype(np.float64)
    if np.issubdtype(data.dtype, np.integer):
        heights = heights * vertical_scale + vertical_offset
    if nodata is not None:
        heights[data == nodata] = np.nan
    try:
        heights = _trim_nodata(heights)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc
    return ElevationGrid(heights.astype(np.float32), cell_x, cell_y)


def read_elevation(path: str | Path, cell_size: float | None = None, vertical_scale: float = 1.0,
                   vertical_offset: float = 0.0) -> Heightfield:
    """Read one elevation raster into a Heightfield (heights float32 metres; no-data cells NaN).

    cell_size: metres per cell; required unless the file says (GeoTIFF pixel scale, .npz spacing).
    Pixels that are not square on the ground (degree grids away from the equator) keep their values
    exactly and get the geometric mean of the two axes as their one cell size: areas are right, and
    lengths are off by sqrt(dx/dy) per axis (a few % for most tiles; ``read_grid`` has both axes and
    ``backend.data.real_dems.resample_square`` area-averages to true square cells).
    vertical_scale / vertical_offset: applied to integer rasters (16-bit PNG, integer TIFF, .npy/.npz).
    """
    grid = read_grid(path, vertical_scale, vertical_offset)
    size = cell_size if cell_size is not None else grid.cell_size
    if size is None:
        raise ValueError(f"{path}: the file does not state its cell size; pass cell_size (metres)")
    return Heightfield(grid.heights, float(size), style="imported")


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
        hf = read_elevation(p, cell_size, vertical_scale)
        holes = int(np.isnan(hf.heights).sum())
        if holes:
            raise ValueError(f"{p}: {holes} no-data cells inside the raster; crop or fill them before importing")
        hf = derive_masks(hf)
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
