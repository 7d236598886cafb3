"""Materials from geometry: one rule shared by the corpus simulation and the generator's decoding.

The layered materials (cover, dirt, rock strata) follow from where a solid cell lies relative to the
terrain surface and from its absolute height, exactly as ``chunk.voxelise_terrain`` lays them out, so the
model only has to draw what the rule cannot know: the geometry, the fluids and where ores sit. Ore kinds
follow depth (coal shallow, iron deeper, gold deepest).
"""

from __future__ import annotations

import numpy as np

from .chunk import MATERIAL, STRATA_M, SUBSOIL_M, TOPSOIL_M

STRATA = np.array([MATERIAL["rock"], MATERIAL["rock_light"], MATERIAL["rock_dark"]], np.uint8)
ORE_DEPTHS_M = ((20.0, MATERIAL["ore_coal"]), (50.0, MATERIAL["ore_iron"]), (np.inf, MATERIAL["ore_gold"]))


def strata_band(z: np.ndarray) -> np.ndarray:
    """Which of the three strata bands (0 rock, 1 light, 2 dark) absolute height z (metres) lies in."""
    return np.floor(np.asarray(z) / STRATA_M).astype(np.int64) % 3


def layered_materials(solid: np.ndarray, terrain_depth: np.ndarray, z: np.ndarray, cover: str) -> np.ndarray:
    """(Z, Y, X) uint8 materials of solid cells by the terrain rule; air elsewhere.

    terrain_depth: (Z, Y, X) metres below the terrain surface (the featureless density); z: (Z,) cell heights.
    Solid cells above the terrain (arches, overhangs) are rock of their stratum.
    """
    material = np.broadcast_to(STRATA[strata_band(z)][:, None, None], solid.shape).copy()
    below = terrain_depth > 0
    material[below & (terrain_depth < SUBSOIL_M)] = MATERIAL["dirt"]
    material[below & (terrain_depth < TOPSOIL_M)] = MATERIAL[cover]
    material[~solid] = MATERIAL["air"]
    return material


def ore_kind(terrain_depth: np.ndarray) -> np.ndarray:
    """The ore material at each depth below the terrain surface (metres)."""
    kinds = np.full(np.shape(terrain_depth), ORE_DEPTHS_M[-1][1], np.uint8)
    for limit, kind in reversed(ORE_DEPTHS_M[:-1]):
        kinds[np.asarray(terrain_depth) < limit] = kind
    return kinds


def ore_allowed(solid: np.ndarray, terrain_depth: np.ndarray) -> np.ndarray:
    """Ores sit only in rock: solid and below the dirt."""
    return solid & (terrain_depth >= SUBSOIL_M)


def compose(solid: np.ndarray, terrain_depth: np.ndarray, z: np.ndarray, cover: str, ore: np.ndarray,
            water: np.ndarray, lava: np.ndarray) -> np.ndarray:
    """Materials of a chunk or region from its geometry, ore cells and fluid cells (fluids only in non-solid)."""
    material = layered_materials(solid, terrain_depth, z, cover)
    ores = ore & ore_allowed(solid, terrain_depth)
    material[ores] = ore_kind(terrain_depth)[ores]
    material[water & ~solid] = MATERIAL["water"]
    material[lava & ~solid] = MATERIAL["lava"]
    return material
