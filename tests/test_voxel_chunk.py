"""The voxel chunk frame: featureless chunks are the terrain, in the terrain mesh's own frame."""

import numpy as np
import pytest

from backend.meshing.heightfield import grid_vertices
from backend.voxels.chunk import CHUNK, MATERIAL, ChunkKey, VoxelChunk, terrain_heights_at, voxelise_terrain


def test_terrain_heights_at_mesh_vertices_are_the_heights() -> None:
    rng = np.random.default_rng(0)
    heights = rng.normal(0, 20, (33, 41)).astype(np.float32)
    vertices = grid_vertices(heights, 3.0).reshape(33, 41, 3)
    x, y = vertices[0, :, 0].astype(np.float64), vertices[:, 0, 1].astype(np.float64)
    got = terrain_heights_at(heights, 3.0, (x[0], y[0]), x, y)
    np.testing.assert_allclose(got, heights, atol=1e-4)


def test_featureless_chunk_surface_is_the_terrain() -> None:
    heights = np.fromfunction(lambda r, c: 10 + 0.5 * c - 0.25 * r, (65, 65)).astype(np.float32)
    chunk = voxelise_terrain(heights, 4.0, (0.0, 0.0), ChunkKey(1, 1, 0), 2.0)
    x, y, z = chunk.cell_centres()
    surface = terrain_heights_at(heights, 4.0, (0.0, 0.0), x, y)
    # In every column the density is the terrain height minus z: solid below, air above.
    np.testing.assert_allclose(chunk.density, surface[None] - z[:, None, None], atol=1e-4)
    assert (chunk.material[chunk.density <= 0] == MATERIAL["air"]).all()
    top = chunk.solid & (chunk.density < 1.0)
    assert (chunk.material[top] == MATERIAL["grass"]).all()


def test_chunk_refuses_wrong_shapes_and_sizes() -> None:
    cube = np.zeros((CHUNK,) * 3)
    with pytest.raises(ValueError, match="voxel_size"):
        VoxelChunk(ChunkKey(0, 0, 0), 3.0, cube, cube)
    with pytest.raises(ValueError, match="must be"):
        VoxelChunk(ChunkKey(0, 0, 0), 2.0, np.zeros((CHUNK, CHUNK, 8)), cube)
