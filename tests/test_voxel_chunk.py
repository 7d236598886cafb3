"""The voxel chunk frame: featureless chunks are the terrain, in the terrain mesh's own frame."""

import numpy as np
import pytest

from backend.meshing.heightfield import grid_vertices
from backend.voxels import channels as ch
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


def test_a_drawn_cave_grows_through_the_haze_around_it_and_nowhere_else() -> None:
    """Deep rock of a middling negative change opens only where it joins a cave the model committed to; haze alone,
    haze in the ground's skin or above ground and the other channels stay as drawn."""
    n, vs = 16, 2.0
    depth = np.broadcast_to((12.0 - np.arange(n, dtype=np.float32))[:, None, None] * vs, (n, n, n)).copy()
    channels = np.zeros((3, n, n, n), np.float32)
    channels[0, 4, 4, 4] = -2.0  # a drawn cave cell deep in the rock (terrain tsdf 1)
    channels[0, 4, 4, 5:9] = -0.9  # haze joined to it
    channels[0, 4, 10, 4:8] = -0.9  # haze on its own
    channels[0, 4, 4, 9] = -0.5  # a change too faint for the reach: the growth stops before it
    channels[0, 13:15, 4, 4] = -0.9  # above the terrain (depth < 0): not underground
    channels[0, 10, 8, 8] = -2.0  # a drawn cave just deep enough (terrain tsdf 1)...
    channels[0, 11, 8, 8] = -0.4  # ...and haze above it in the ground's skin (tsdf 0.5): it keeps its roof
    channels[1:, 4, 4, 5] = 0.25
    out = ch.grown_caves(channels, depth, vs)
    density, _ = ch.decode(out, depth, np.zeros(n), vs, "grass")
    np.testing.assert_array_equal(density[4, 4, 4:9] <= 0, True)
    assert density[4, 4, 9] > 0 and (density[4, 10, 4:8] > 0).all()
    assert (out[0, 13:15] == channels[0, 13:15]).all()
    changed = out[0] != channels[0]
    assert changed.sum() == 4 and changed[4, 4, 5:9].all()
    assert density[10, 8, 8] <= 0 < density[11, 8, 8]
    np.testing.assert_array_equal(out[1:], channels[1:])
    np.testing.assert_array_equal(ch.decode(channels, depth, np.zeros(n), vs, "grass")[0][4, 4, 5:9] > 0, True)
