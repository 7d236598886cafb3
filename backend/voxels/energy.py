"""The plausibility energy of a voxel grid: what a geologist would call wrong, counted in cells.

A grid is seen as classes per cell (``AIR``, ``SOLID``, ``WATER``, ``LAVA``), arrays indexed (..., z, row,
col) with z up; leading batch axes are allowed for the local terms. Four terms:

* floating: solid cells in a piece that touches none of the anchoring faces (the ground below, or the
  neighbouring chunks a piece may continue into);
* thin overhang: a solid cell with open space right below whose solid column above it is thinner than
  ``min_overhang_cells`` (a roof or ledge that would break off);
* unheld water: water beside or above open air (it would run out);
* lava touching water.

The last three are local (a cell's term reads at most ``min_overhang_cells`` cells up and one cell
around), which is what lets the annealed sampler evaluate moves on a small window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .chunk import MATERIAL

AIR, SOLID, WATER, LAVA = 0, 1, 2, 3
N_CLASSES = 4
FACES = ("bottom", "top", "north", "south", "west", "east")  # z 0, z -1, row 0, row -1, col 0, col -1
_SIX = ndimage.generate_binary_structure(3, 1)


@dataclass(frozen=True)
class EnergyWeights:
    """Weight per violating cell of each term, and the thinnest unsupported solid allowed."""

    floating: float = 1.0
    thin_overhang: float = 1.0
    unheld_water: float = 1.0
    lava_water: float = 1.0
    min_overhang_cells: int = 2


def classes_of(density: np.ndarray, material: np.ndarray) -> np.ndarray:
    """Cell classes of a chunk's arrays: solid where density > 0, else its fluid, else air."""
    classes = np.where(density > 0, SOLID, AIR).astype(np.uint8)
    classes[(density <= 0) & (material == MATERIAL["water"])] = WATER
    classes[(density <= 0) & (material == MATERIAL["lava"])] = LAVA
    return classes


def floating_cells(solid: np.ndarray, anchors: tuple[str, ...] = FACES) -> np.ndarray:
    """(Z, Y, X) bool: solid cells whose 6-connected piece touches none of the anchoring faces."""
    unknown = set(anchors) - set(FACES)
    if unknown:
        raise ValueError(f"unknown faces {sorted(unknown)}; faces are {FACES}")
    labels, n = ndimage.label(solid, structure=_SIX)
    if n == 0:
        return np.zeros(solid.shape, bool)
    faces = {"bottom": labels[0], "top": labels[-1], "north": labels[:, 0], "south": labels[:, -1],
             "west": labels[:, :, 0], "east": labels[:, :, -1]}
    anchored = np.zeros(n + 1, bool)
    for face in anchors:
        anchored[np.unique(faces[face])] = True
    anchored[0] = True  # label 0 is the open space
    return ~anchored[labels]


def thin_overhang_cells(classes: np.ndarray, min_cells: int) -> np.ndarray:
    """(..., Z, Y, X) bool: solid cells with no solid below whose solid run upward is below ``min_cells``.

    The run is counted up to ``min_cells`` cells; a run reaching the top of the grid counts as thick (the
    ground may continue above), and the bottom layer is never flagged (what is below it is unknown).
    """
    solid = classes == SOLID
    z = solid.shape[-3]
    run = np.zeros(solid.shape, np.int16)
    run[..., -1, :, :] = np.where(solid[..., -1, :, :], min_cells, 0)
    for k in range(z - 2, -1, -1):
        run[..., k, :, :] = np.where(solid[..., k, :, :], np.minimum(run[..., k + 1, :, :] + 1, min_cells), 0)
    flagged = np.zeros(solid.shape, bool)
    flagged[..., 1:, :, :] = solid[..., 1:, :, :] & ~solid[..., :-1, :, :] & (run[..., 1:, :, :] < min_cells)
    return flagged


def _neighbour_is(classes: np.ndarray, wanted: tuple[int, ...], lateral_only: bool = False) -> np.ndarray:
    """(..., Z, Y, X) bool: a 6-neighbour (or, lateral_only, a row/column neighbour) is of a wanted class."""
    hit = np.isin(classes, wanted)
    out = np.zeros(classes.shape, bool)
    out[..., :, 1:, :] |= hit[..., :, :-1, :]
    out[..., :, :-1, :] |= hit[..., :, 1:, :]
    out[..., :, :, 1:] |= hit[..., :, :, :-1]
    out[..., :, :, :-1] |= hit[..., :, :, 1:]
    if not lateral_only:
        out[..., 1:, :, :] |= hit[..., :-1, :, :]
        out[..., :-1, :, :] |= hit[..., 1:, :, :]
    return out


def unheld_water_cells(classes: np.ndarray) -> np.ndarray:
    """(..., Z, Y, X) bool: water with air or lava right below it, or air beside it."""
    water = classes == WATER
    below = np.zeros(classes.shape, bool)
    below[..., 1:, :, :] = np.isin(classes[..., :-1, :, :], (AIR, LAVA))
    return water & (below | _neighbour_is(classes, (AIR,), lateral_only=True))


def lava_water_cells(classes: np.ndarray) -> np.ndarray:
    """(..., Z, Y, X) bool: lava cells with a water neighbour."""
    return (classes == LAVA) & _neighbour_is(classes, (WATER,))


def local_violations(classes: np.ndarray, weights: EnergyWeights = EnergyWeights()) -> dict[str, np.ndarray]:
    """The local terms' violating cells, by term name."""
    return {"thin_overhang": thin_overhang_cells(classes, weights.min_overhang_cells),
            "unheld_water": unheld_water_cells(classes), "lava_water": lava_water_cells(classes)}


def local_energy(classes: np.ndarray, weights: EnergyWeights = EnergyWeights()) -> np.ndarray:
    """The local terms' weighted count per grid: shape of the leading (batch) axes."""
    total = np.zeros(classes.shape[:-3])
    for name, cells in local_violations(classes, weights).items():
        total = total + getattr(weights, name) * cells.sum(axis=(-3, -2, -1))
    return total


def violations(classes: np.ndarray, weights: EnergyWeights = EnergyWeights(),
               anchors: tuple[str, ...] = FACES) -> dict[str, np.ndarray]:
    """Every term's violating cells of one (Z, Y, X) grid."""
    return {"floating": floating_cells(classes == SOLID, anchors), **local_violations(classes, weights)}


def energy(classes: np.ndarray, weights: EnergyWeights = EnergyWeights(), anchors: tuple[str, ...] = FACES) -> float:
    """The total plausibility energy of one (Z, Y, X) grid (0 = nothing implausible)."""
    return float(sum(getattr(weights, name) * cells.sum()
                     for name, cells in violations(classes, weights, anchors).items()))
