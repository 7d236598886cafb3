"""Iso-surface of a 3D density chunk (caves, overhangs, arches) through PyMCubes."""

from __future__ import annotations

import numpy as np


def voxel_mesh(density: np.ndarray, iso: float = 0.0, voxel_size: float = 1.0,
               origin: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (N, 3) float32 metres and faces (F, 3) int32 of ``density > iso`` (solid inside).

    density: (D, H, W) with D = z up (index 0 at the bottom), H = rows (row 0 north),
    W = columns (column 0 west), matching the heightfield's image order. ``origin`` is the
    world (x, y, z) of sample [0, 0, 0] (bottom, north-west corner). Faces wind outward.
    """
    density = np.asarray(density, dtype=np.float32)
    if density.ndim != 3 or min(density.shape) < 2:
        raise ValueError(f"density must be (D, H, W) with every side >= 2, got shape {density.shape}")
    if not voxel_size > 0:
        raise ValueError(f"voxel_size must be positive metres, got {voxel_size}")
    import mcubes  # PyMCubes; lazy so meshing heightfields never needs it

    ijk, faces = mcubes.marching_cubes(density, float(iso))
    # (z, row, col) -> (x east, y north, z up): a swap plus one negation, so winding is kept.
    vertices = np.empty((len(ijk), 3), dtype=np.float32)
    vertices[:, 0] = origin[0] + ijk[:, 2] * voxel_size
    vertices[:, 1] = origin[1] - ijk[:, 1] * voxel_size
    vertices[:, 2] = origin[2] + ijk[:, 0] * voxel_size
    return vertices, faces.astype(np.int32)
