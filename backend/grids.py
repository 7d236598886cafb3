"""Numeric helpers on height grids, one implementation each, shared by every layer.

Slopes (numpy, central differences, heights and cell size in metres) and resampling with a named filter:
torch maps for the models (``downsample``: area average; ``upsample``: bicubic by a factor, the
super-resolution's condition; ``resample``: to a size with corner samples kept), numpy grids for exports
(``zoom``: spline of a given order, corner samples kept).
"""

from __future__ import annotations

import numpy as np
import torch.nn.functional as F
from scipy import ndimage
from torch import Tensor


def gradient_magnitude(heights: np.ndarray, cell_size: float, dtype: type = np.float64) -> np.ndarray:
    """(H, W) heights -> (H, W) |grad h| (rise over run), computed in ``dtype``."""
    gy, gx = np.gradient(heights.astype(dtype), cell_size)
    return np.hypot(gx, gy)


def slope_angle(gradient: np.ndarray) -> np.ndarray:
    """Rise over run -> slope angle in degrees."""
    return np.degrees(np.arctan(gradient))


def slope_degrees(heights: np.ndarray, cell_size: float, dtype: type = np.float64) -> np.ndarray:
    """(H, W) heights -> (H, W) slope angle in degrees, computed in ``dtype``."""
    return slope_angle(gradient_magnitude(heights, cell_size, dtype))


def downsample(x: Tensor, factor: int) -> Tensor:
    """Area average by ``factor`` over the last two dims ([..., H, W])."""
    lead = x.shape[:-2]
    y = F.avg_pool2d(x.reshape(-1, 1, *x.shape[-2:]), factor)
    return y.reshape(*lead, *y.shape[-2:])


def upsample(x: Tensor, factor: int) -> Tensor:
    """Bicubic upsampling by ``factor`` of [B, C, H, W] (edges replicate): the coarse condition."""
    return F.interpolate(x, scale_factor=factor, mode="bicubic", align_corners=False)


def resample(x: Tensor, size: int) -> Tensor:
    """[B, C, n, n] -> [B, C, size, size] with corner samples kept (the map spans the same extent): area
    average to shrink, bicubic through the corner samples to grow."""
    if x.shape[-1] == size:
        return x
    if size < x.shape[-1]:
        return F.interpolate(x, size=(size, size), mode="area")
    return F.interpolate(x, size=(size, size), mode="bicubic", align_corners=True)


def zoom(a: np.ndarray, size: int, order: int) -> np.ndarray:
    """(H, W[, C]) -> (size, size[, C]) by a spline of ``order`` (1 bilinear, 3 cubic B-spline); corner samples
    stay on the corners so the extent is kept."""
    factors = (size / a.shape[0], size / a.shape[1]) + (1.0,) * (a.ndim - 2)
    return ndimage.zoom(a, factors, order=order, mode="nearest", grid_mode=False, prefilter=order > 1)
