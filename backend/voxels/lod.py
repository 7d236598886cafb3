"""Coarser levels of detail of a chunk's cells, for the blocky meshes of distant chunks.

Level ``lod`` merges blocks of 2^lod cells a side into one cell: solid when at least half of its cells are,
of the material most of its solid cells have, and marked as ground (``ground``: cells the artist and the
features left as the terrain) when any of its cells is. The merged cells are given back on the chunk's own
grid (each block's cells alike), so a coarse chunk is meshed with its neighbours exactly as a fine one: the
faces on the plane two chunks share are owned by one of them and computed from both sides' cells as each
chunk shows them, whatever their levels, so a coarse chunk meets a fine one without a gap. Greedy quads
then merge each block's faces, so the mesh has about 4^lod times fewer quads.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .chunk import CHUNK, PALETTE, ChunkKey

MAX_LOD = 3  # blocks of 8 cells: a 32³ chunk shown as 4³ blocks


def coarse_cells(solid: np.ndarray, material: np.ndarray, ground: np.ndarray,
                 lod: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(solid, material, ground) of a chunk's (CHUNK,)*3 cells at level ``lod``, on the chunk's own grid."""
    if not 0 <= lod <= MAX_LOD or isinstance(lod, bool) or not isinstance(lod, int):
        raise ValueError(f"lod must be an integer in [0, {MAX_LOD}], got {lod!r}")
    if not solid.shape == material.shape == ground.shape == (CHUNK,) * 3:
        raise ValueError(f"solid, material and ground must be {(CHUNK,) * 3}")
    if lod == 0:
        return solid, material, ground
    side, n = 2**lod, CHUNK >> lod

    def blocks(a: np.ndarray) -> np.ndarray:  # (n³, side³): each block's cells in a row
        return a.reshape(n, side, n, side, n, side).transpose(0, 2, 4, 1, 3, 5).reshape(n**3, side**3)

    solid_b = blocks(solid)
    block_solid = solid_b.sum(1) * 2 >= side**3
    index = np.arange(n**3)[:, None] * len(PALETTE) + blocks(material).astype(np.int64)
    counts = np.bincount(index[solid_b], minlength=n**3 * len(PALETTE)).reshape(n**3, len(PALETTE))
    block_material = np.where(block_solid, counts.argmax(1), 0).astype(np.uint8)
    block_ground = blocks(ground).any(1)

    def cells(b: np.ndarray) -> np.ndarray:  # back onto the chunk's grid
        grid = b.reshape(n, n, n)
        return np.repeat(np.repeat(np.repeat(grid, side, 0), side, 1), side, 2)

    return cells(block_solid), cells(block_material), cells(block_ground)


@dataclass(frozen=True)
class LodRings:
    """Levels by distance: chunks within ``radius`` chunks of ``focus`` (the largest of the three key
    differences) at level 0, each ring of chunks farther out one level coarser, up to MAX_LOD."""

    focus: ChunkKey
    radius: int

    def __post_init__(self) -> None:
        if isinstance(self.radius, bool) or not isinstance(self.radius, int) or self.radius < 0:
            raise ValueError(f"the level-of-detail radius must be an integer >= 0 chunks, got {self.radius!r}")

    def level(self, key: ChunkKey) -> int:
        distance = max(abs(key.i - self.focus.i), abs(key.j - self.focus.j), abs(key.k - self.focus.k))
        return min(MAX_LOD, max(0, distance - self.radius))
