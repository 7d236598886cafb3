"""Masks and material splat maps derived from a simulated (or imported) heightfield.

All masks are (H, W) float32 in [0, 1]; the splat map is (H, W, 6) float32 summing to 1 over
``SPLAT_NAMES``. Rules are simple and explicit so artists can predict them.
"""

from __future__ import annotations

import numpy as np

from backend.grids import slope_degrees

SPLAT_NAMES: tuple[str, ...] = ("rock", "scree", "soil", "grass", "sand", "snow")


def flow_mask(area_m2: np.ndarray, cell_size: float) -> np.ndarray:
    """Drainage area -> [0, 1]: log10(area in cells) / log10(cells in the map), so 1 = whole map."""
    cells = np.maximum(area_m2 / (cell_size * cell_size), 1.0)
    return np.clip(np.log10(cells) / np.log10(max(cells.size, 10)), 0.0, 1.0).astype(np.float32)


def depth_mask(depth_m: np.ndarray, scale_m: float) -> np.ndarray:
    """Erosion or deposition thickness (m) -> [0, 1] with 1 - exp(-depth / scale) saturation."""
    if scale_m <= 0:
        raise ValueError(f"scale_m must be positive, got {scale_m}")
    return (1.0 - np.exp(-np.maximum(depth_m, 0.0) / scale_m)).astype(np.float32)


def _ramp(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.clip((x - lo) / (hi - lo), 0.0, 1.0)


def splat_map(heights: np.ndarray, cell_size: float, flow: np.ndarray, deposition: np.ndarray,
              sand: np.ndarray | None = None, snow_line: float | None = None,
              sea_level: float = 0.0) -> np.ndarray:
    """Material weights (H, W, 6) over SPLAT_NAMES, summing to 1.

    rock on cliffs (> 40 deg), scree on steep slopes and talus fans (30-40 deg or deposits on
    slopes), soil in deposits and channels, grass on gentle slopes, sand on beaches (within a few
    metres of sea level), in dry flats and where ``sand`` (m) lies, snow above ``snow_line`` (m)
    on slopes that can hold it.
    """
    slope = slope_degrees(heights, cell_size)
    h = heights.astype(np.float64)
    rock = _ramp(slope, 35.0, 45.0)
    scree = _ramp(slope, 25.0, 35.0) * (1.0 - rock) + 0.5 * deposition * _ramp(slope, 15.0, 30.0)
    soil = 0.6 * deposition * (1.0 - _ramp(slope, 15.0, 30.0)) + 0.5 * flow ** 2
    grass = (1.0 - _ramp(slope, 15.0, 30.0)) * (1.0 - deposition)
    beach = (1.0 - _ramp(np.abs(h - sea_level), 2.0, 6.0)) * (1.0 - _ramp(slope, 5.0, 15.0))
    sand_w = beach + (0.0 if sand is None else 3.0 * _ramp(sand, 0.2, 2.0))
    snow = np.zeros_like(h)
    if snow_line is not None:
        snow = 3.0 * _ramp(h, snow_line, snow_line + 150.0) * (1.0 - _ramp(slope, 40.0, 55.0))
    w = np.stack([rock, scree, soil, grass, sand_w, snow], axis=-1) + 1e-6
    return (w / w.sum(-1, keepdims=True)).astype(np.float32)
