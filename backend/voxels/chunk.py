"""Voxel chunks: the 3D data under and around a heightfield (caves, overhangs, arches).

A chunk is ``CHUNK`` cells a side. Its arrays are indexed (z, row, col): z up (index 0 at the bottom),
rows south (row 0 north), columns east, the heightfield's image order with height in front, as
``meshing.voxels.voxel_mesh`` reads them. Values sit at cell centres.

The voxel frame is the terrain mesh's frame in metres (x east, y north, z up; the mesh is centred on
its grid, see ``meshing.heightfield.grid_vertices``). Chunk key (i, j, k) covers
x in [i S, (i + 1) S), y in (-(j + 1) S, -j S], z in [k S, (k + 1) S) with S = CHUNK * voxel_size:
j grows south like the world's tiles, so a chunk's rows run the same way as the terrain's.

``density`` is signed metres, positive inside solid ground; the surface is density 0. For ground
without features it is the terrain height minus the cell's z, so the voxel surface is the heightfield
itself and the two meshes meet without a crack.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CHUNK = 32  # cells per chunk side
VOXEL_SIZES_M = (1.0, 2.0, 4.0)  # the voxel sizes a world may use, metres per cell
# size -> (label, what it gives): the add-on's Voxel size menu (hello_reply), names as a request's sizes print
VOXEL_SIZE_NOTES: dict[str, tuple[str, str]] = {
    f"{size:g}": (f"{size:g} m", f"{size:g} m voxels: {CHUNK * size:g} m chunks") for size in VOXEL_SIZES_M}
# the ground covers the add-on offers (any solid material of the palette is accepted): its Ground cover menu
COVER_NOTES: dict[str, tuple[str, str]] = {
    name: (name.title(), f"{name.title()} on top of the ground")
    for name in ("grass", "sand", "snow", "dirt", "gravel")}

# The material palette: index = the value stored in ``VoxelChunk.material``; 0 is air. Colours are
# sRGB, used by the .vox palette and the Blender material.
PALETTE: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("air", (0, 0, 0)),
    ("rock", (118, 113, 106)),
    ("rock_light", (168, 150, 122)),  # pale strata (sandstone, limestone)
    ("rock_dark", (78, 72, 70)),  # dark strata (shale, basalt)
    ("dirt", (112, 82, 56)),
    ("grass", (86, 122, 58)),
    ("sand", (214, 190, 140)),
    ("gravel", (140, 136, 128)),
    ("snow", (240, 244, 248)),
    ("ice", (170, 210, 235)),
    ("water", (50, 100, 160)),
    ("lava", (230, 90, 20)),
    ("ore_coal", (40, 40, 44)),
    ("ore_iron", (160, 110, 90)),
    ("ore_gold", (220, 180, 60)),
    ("crystal", (180, 140, 230)),
)
MATERIAL_NAMES: tuple[str, ...] = tuple(name for name, _ in PALETTE)
MATERIAL = {name: index for index, name in enumerate(MATERIAL_NAMES)}
FLUIDS = frozenset({MATERIAL["water"], MATERIAL["lava"]})  # not solid: density <= 0 where they are

TOPSOIL_M = 1.0  # grass (or the style's cover) this deep
SUBSOIL_M = 3.0  # dirt down to this depth, rock below
STRATA_M = 8.0  # strata bands this thick, by absolute height


@dataclass(frozen=True)
class ChunkKey:
    """Which chunk: (i east, j south, k up) in units of one chunk, for one voxel size."""

    i: int
    j: int
    k: int

    def origin(self, voxel_size: float) -> tuple[float, float, float]:
        """World (x, y, z) of the centre of cell [0, 0, 0] (bottom, north-west corner)."""
        side = CHUNK * voxel_size
        half = 0.5 * voxel_size
        return (self.i * side + half, -self.j * side - half, self.k * side + half)


@dataclass
class VoxelChunk:
    """One chunk: signed density (metres, > 0 solid) and a material index per cell."""

    key: ChunkKey
    voxel_size: float  # metres per cell
    density: np.ndarray  # (CHUNK, CHUNK, CHUNK) float32
    material: np.ndarray  # (CHUNK, CHUNK, CHUNK) uint8, index into PALETTE

    def __post_init__(self) -> None:
        shape = (CHUNK, CHUNK, CHUNK)
        if self.voxel_size not in VOXEL_SIZES_M:
            raise ValueError(f"voxel_size must be one of {VOXEL_SIZES_M} metres, got {self.voxel_size}")
        self.density = np.ascontiguousarray(self.density, dtype=np.float32)
        self.material = np.ascontiguousarray(self.material, dtype=np.uint8)
        if self.density.shape != shape or self.material.shape != shape:
            raise ValueError(f"density and material must be {shape}, got {self.density.shape} "
                             f"and {self.material.shape}")
        if int(self.material.max(initial=0)) >= len(PALETTE):
            raise ValueError(f"material indices must be below {len(PALETTE)}")

    @property
    def solid(self) -> np.ndarray:
        """(CHUNK,)*3 bool: cells inside the ground."""
        return self.density > 0

    def cell_centres(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """World x (per column), y (per row) and z (per layer) of the cell centres, metres."""
        x0, y0, z0 = self.key.origin(self.voxel_size)
        steps = np.arange(CHUNK, dtype=np.float64) * self.voxel_size
        return x0 + steps, y0 - steps, z0 + steps


def terrain_heights_at(heights: np.ndarray, cell_size: float, grid_origin: tuple[float, float],
                       x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(len(y), len(x)) heights of the terrain mesh at world x (columns) and y (rows), bilinear.

    ``grid_origin`` is the (x, y) of heightfield vertex (0, 0), as ``grid_vertices`` places it; points
    outside the grid take the nearest edge height.
    """
    rows, cols = heights.shape
    fc = np.clip((np.asarray(x, np.float64) - grid_origin[0]) / cell_size, 0, cols - 1)
    fr = np.clip((grid_origin[1] - np.asarray(y, np.float64)) / cell_size, 0, rows - 1)
    c0 = np.minimum(np.floor(fc).astype(np.int64), cols - 2)
    r0 = np.minimum(np.floor(fr).astype(np.int64), rows - 2)
    tc, tr = (fc - c0)[None, :], (fr - r0)[:, None]
    z = heights.astype(np.float64)
    top = z[r0][:, c0] * (1 - tc) + z[r0][:, c0 + 1] * tc
    bottom = z[r0 + 1][:, c0] * (1 - tc) + z[r0 + 1][:, c0 + 1] * tc
    return top * (1 - tr) + bottom * tr


def voxelise_terrain(heights: np.ndarray, cell_size: float, grid_origin: tuple[float, float],
                     key: ChunkKey, voxel_size: float, cover: str = "grass") -> VoxelChunk:
    """The featureless chunk under a heightfield: density = terrain height - z, layered materials.

    ``cover`` is the top layer's material (grass, sand, snow...); below it dirt, then rock in strata
    bands by absolute height, so neighbouring chunks continue each other's layers.
    """
    if cover not in MATERIAL or MATERIAL[cover] == 0:
        raise ValueError(f"cover must be a solid material of the palette, got {cover!r}")
    x, y, z = VoxelChunk(key, voxel_size, np.zeros((CHUNK,) * 3), np.zeros((CHUNK,) * 3)).cell_centres()
    surface = terrain_heights_at(heights, cell_size, grid_origin, x, y)  # (rows, cols)
    density = surface[None, :, :] - z[:, None, None]
    band = np.floor(z / STRATA_M).astype(np.int64) % 3
    strata = np.array([MATERIAL["rock"], MATERIAL["rock_light"], MATERIAL["rock_dark"]], np.uint8)[band]
    material = np.broadcast_to(strata[:, None, None], density.shape).copy()
    material[density < SUBSOIL_M] = MATERIAL["dirt"]
    material[density < TOPSOIL_M] = MATERIAL[cover]
    material[density <= 0] = MATERIAL["air"]
    return VoxelChunk(key, voxel_size, density.astype(np.float32), material)
