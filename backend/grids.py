"""Numeric helpers on height grids, one implementation each, shared by every layer.

Slopes (numpy, central differences, heights and cell size in metres) and resampling with a named filter:
torch maps for the models (``downsample``: area average; ``upsample``: bicubic by a factor, the
super-resolution's condition; ``resample``: to a size with corner samples kept, growing by ``grow``), numpy
grids for exports (``zoom``: spline of a given order, corner samples kept).
"""

from __future__ import annotations

import numpy as np
import torch
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
    average to shrink, ``grow`` through the corner samples to grow."""
    if x.shape[-1] == size:
        return x
    if size < x.shape[-1]:
        return F.interpolate(x, size=(size, size), mode="area")
    return grow(x, (size, size))


def grow(x: Tensor, size: tuple[int, int]) -> Tensor:
    """[..., h, w] -> [..., size] through the corner samples by Catmull-Rom cubics, which keep ramps straight.

    torch's bicubic (Keys' kernel with a = -0.75) bends a ramp by up to 5 % of a cell's rise, with a period of
    the sample spacing: at a non-integer factor it hillshades as a checkerboard on every slope (0.48 m off a
    10 m/cell ramp; Catmull-Rom, a = -0.5, reproduces it exactly). Past the ends the ramp continues.
    """
    rows, cols = (_catmull_rom(n, m, x.dtype, x.device) for n, m in zip(x.shape[-2:], size))
    return rows @ x @ cols.T


def _catmull_rom(n: int, m: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """[m, n]: the weights of ``n`` samples at ``m`` points spread evenly from the first to the last."""
    if n == 1:
        return torch.ones(m, 1, dtype=dtype, device=device)
    pos = torch.linspace(0, n - 1, m, dtype=torch.float64)
    left = pos.floor().clamp(max=n - 2)
    t = (pos - left)[:, None]
    weights = torch.cat([(-t**3 + 2 * t**2 - t) / 2, (3 * t**3 - 5 * t**2 + 2) / 2,
                         (-3 * t**3 + 4 * t**2 + t) / 2, (t**3 - t**2) / 2], dim=1)  # samples left-1 .. left+2
    matrix = torch.zeros(m, n + 2, dtype=torch.float64)  # with a ghost sample past each end
    matrix.scatter_add_(1, left.long()[:, None] + torch.arange(4), weights)
    ends = torch.zeros(n + 2, n, dtype=torch.float64)  # ghosts continue the ramp: 2 x[0] - x[1], 2 x[-1] - x[-2]
    ends[1:-1] = torch.eye(n, dtype=torch.float64)
    ends[0, :2] = torch.tensor([2.0, -1.0])
    ends[-1, -2:] = torch.tensor([-1.0, 2.0])
    return (matrix @ ends).to(dtype=dtype, device=device)


def zoom(a: np.ndarray, size: int, order: int) -> np.ndarray:
    """(H, W[, C]) -> (size, size[, C]) by a spline of ``order`` (1 bilinear, 3 cubic B-spline); corner samples
    stay on the corners so the extent is kept."""
    factors = (size / a.shape[0], size / a.shape[1]) + (1.0,) * (a.ndim - 2)
    return ndimage.zoom(a, factors, order=order, mode="nearest", grid_mode=False, prefilter=order > 1)
