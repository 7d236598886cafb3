"""What a voxel chunk holds, measured the same way for the corpus and the generator (reports, tests)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

_SIX = ndimage.generate_binary_structure(3, 1)
ELONGATION_MIN_CELLS = 20  # smaller caves have no shape to speak of


def elongation(caves: np.ndarray) -> float:
    """Tunnels or pockets: per 6-connected cave of at least ELONGATION_MIN_CELLS cells, its length along its
    principal axis (sqrt(12 x the largest eigenvalue of its cells' covariance), a rod's length) over its thickness
    (twice its largest inscribed radius), mean weighted by volume; NaN without such a cave. A ball is about 1,
    a worm tunnel several."""
    labels, n = ndimage.label(caves, structure=_SIX)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    found, weights = [], []
    for k in np.flatnonzero(sizes[1:] >= ELONGATION_MIN_CELLS) + 1:
        cave = labels == k
        thickness = 2 * ndimage.distance_transform_edt(np.pad(cave, 1)).max()
        length = np.sqrt(12 * np.linalg.eigvalsh(np.cov(np.argwhere(cave).T.astype(np.float64)))[-1])
        found.append(length / thickness)
        weights.append(sizes[k])
    return float(np.average(found, weights=weights)) if found else float("nan")


def cave_cells(solid: np.ndarray, terrain_depth: np.ndarray) -> np.ndarray:
    """Open cells (air or fluid) under the terrain surface."""
    return ~solid & (terrain_depth > 0)


def chunk_measures(solid: np.ndarray, terrain_depth: np.ndarray) -> dict[str, float]:
    """Cave volume share (of the cells under the terrain), how connected the caves are (the largest
    system's share of the cave volume, the number of systems, the share open to the sky), their elongation
    (NaN without a cave to shape) and the overhang share: columns with rock above open air that lies above the
    terrain's surface."""
    caves = cave_cells(solid, terrain_depth)
    under = int((terrain_depth > 0).sum())
    labels, n = ndimage.label(caves, structure=_SIX)
    sizes = np.bincount(labels.ravel())[1:] if n else np.zeros(0, np.int64)
    open_air = ~solid & (terrain_depth <= 0)
    sky_labels = np.unique(labels[ndimage.binary_dilation(open_air, structure=_SIX) & caves])
    open_to_sky = float(sizes[sky_labels[sky_labels > 0] - 1].sum() / sizes.sum()) if n else 0.0
    rock_over_air = solid[1:] & ~solid[:-1] & (terrain_depth[:-1] <= 0)
    return {"cave_share": float(caves.sum() / under) if under else 0.0,
            "largest_system": float(sizes.max() / sizes.sum()) if n else 0.0,
            "systems": float(n),
            "open_to_sky": open_to_sky,
            "elongation": elongation(caves),
            "overhang_columns": float(rock_over_air.any(axis=0).mean())}


def solidity_difference(a: np.ndarray, b: np.ndarray, terrain_depth: np.ndarray) -> float:
    """Share of the cells that differ from the terrain in either chunk where the two chunks disagree."""
    terrain = terrain_depth > 0
    featured = (a != terrain) | (b != terrain)
    return float((a != b)[featured].mean()) if featured.any() else 0.0
