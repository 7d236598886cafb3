"""Topology and positions of a regular terrain grid, in numpy only (no bpy), so plain pytest can test it.

A height grid ``heights`` of shape (H, W) becomes H*W vertices in row-major order, vertex
``i * W + j`` at row i (row 0 = north edge) and column j (column 0 = west edge). Blender axes:
x east, y north, z up, metres, origin at the grid centre. Vertex order equals ``heights.ravel()``,
so a heights-only update writes z straight from the array with no reindexing.
"""

from __future__ import annotations

import numpy as np


def check_heights(heights: np.ndarray, cell_size: float) -> np.ndarray:
    """(H, W) float32 C-contiguous heights, or ValueError naming what is wrong."""
    heights = np.asarray(heights)
    if heights.ndim != 2 or min(heights.shape) < 2:
        raise ValueError(f"heights must be (H, W) with H, W >= 2, got shape {heights.shape}")
    if not np.isfinite(cell_size) or cell_size <= 0:
        raise ValueError(f"cell_size must be positive metres, got {cell_size!r}")
    heights = np.ascontiguousarray(heights, dtype=np.float32)
    if not np.isfinite(heights).all():
        raise ValueError("heights contain NaN or infinity")
    return heights


def positions(heights: np.ndarray, cell_size: float) -> np.ndarray:
    """(H*W, 3) float32 vertex positions: x east, y north, z = heights, centred on the grid."""
    heights = check_heights(heights, cell_size)
    h, w = heights.shape
    out = np.empty((h, w, 3), dtype=np.float32)
    out[:, :, 0] = ((np.arange(w, dtype=np.float64) - (w - 1) / 2) * cell_size).astype(np.float32)[None, :]
    out[:, :, 1] = (((h - 1) / 2 - np.arange(h, dtype=np.float64)) * cell_size).astype(np.float32)[:, None]
    out[:, :, 2] = heights
    return out.reshape(-1, 3)


class PositionBuffer:
    """Reused (H*W, 3) float32 positions: x and y are filled once per grid, each update writes only z.

    Saves the ~4 ms of rebuilding x/y for a 1024² grid on every heights-only update.
    """

    def __init__(self) -> None:
        self._key: tuple[int, int, float] | None = None
        self._xyz = np.empty((0, 3), dtype=np.float32)

    def __call__(self, heights: np.ndarray, cell_size: float) -> np.ndarray:
        heights = check_heights(heights, cell_size)
        key = (*heights.shape, float(cell_size))
        if key != self._key:
            self._xyz = positions(heights, cell_size)
            self._key = key
        else:
            self._xyz[:, 2] = heights.ravel()
        return self._xyz


def quad_corners(h: int, w: int) -> np.ndarray:
    """(Q*4,) int32 corner vertex indices, Q = (H-1)(W-1) quads, counter-clockwise seen from +z.

    Quad (i, j) visits NW -> SW -> SE -> NE: with y pointing north that turns left, so normals face up.
    """
    v = np.arange(h * w, dtype=np.int32).reshape(h, w)
    return np.stack([v[:-1, :-1], v[1:, :-1], v[1:, 1:], v[:-1, 1:]], axis=-1).reshape(-1)


def edges(h: int, w: int) -> np.ndarray:
    """(E, 2) int32 edges: first the east-going ones (H rows of W-1), then the south-going ones."""
    v = np.arange(h * w, dtype=np.int32).reshape(h, w)
    east = np.stack([v[:, :-1], v[:, 1:]], axis=-1).reshape(-1, 2)
    south = np.stack([v[:-1, :], v[1:, :]], axis=-1).reshape(-1, 2)
    return np.concatenate([east, south])


def corner_edges(h: int, w: int) -> np.ndarray:
    """(Q*4,) int32 edge index of the edge leaving each corner in ``quad_corners`` order.

    Lets the mesh be built without Blender recomputing edges (the slow part of a first build).
    """
    east = np.arange(h * (w - 1), dtype=np.int32).reshape(h, w - 1)
    south = (h * (w - 1) + np.arange((h - 1) * w, dtype=np.int32)).reshape(h - 1, w)
    # NW->SW is the south edge at column j, SW->SE the east edge on row i+1,
    # SE->NE the south edge at column j+1, NE->NW the east edge on row i.
    return np.stack([south[:, :-1], east[1:, :], south[:, 1:], east[:-1, :]], axis=-1).reshape(-1)


def loop_starts(h: int, w: int) -> np.ndarray:
    """(Q,) int32 first-corner offset of each quad."""
    return np.arange(0, (h - 1) * (w - 1) * 4, 4, dtype=np.int32)


def to_cells(x: np.ndarray, y: np.ndarray, shape: tuple[int, int], cell_size: float) -> tuple[np.ndarray, np.ndarray]:
    """Local x (east) / y (north) metres -> fractional (row, column), the inverse of ``positions``."""
    h, w = shape
    return (h - 1) / 2 - np.asarray(y) / cell_size, np.asarray(x) / cell_size + (w - 1) / 2
