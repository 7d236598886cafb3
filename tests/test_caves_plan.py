"""The Caves panel's bpy-free part (blender_addon/caves_plan.py): the region around the cursor, refusals,
palette colours, mesh checks, the params its jobs send."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from backend.server.paths import Roots
from backend.server.voxel_job import VoxelRequest
from backend.voxels.chunk import CHUNK, PALETTE
from conftest import addon_module

plan = addon_module("caves_plan")


def test_region_is_centred_on_the_cursor_and_spans_the_ground():
    heights = np.full((65, 65), 100.0, np.float32)
    heights[40:, :] = 150.0  # higher ground in the south
    region = plan.region_at(10.0, -10.0, heights, 16.0, 2.0, size=4, depth=2)
    side = CHUNK * 2.0
    assert region.chunk_min[:2] == (-1, -1) and region.chunk_count[:2] == (4, 4)
    assert region.chunk_min[2] == int(100 // side) - 1  # two layers below the lowest ground's chunk
    assert region.chunk_min[2] + region.chunk_count[2] - 1 == int(150 // side)  # up to the highest ground's
    assert plan.CHUNK == CHUNK


def test_region_too_big_for_one_job_is_refused():
    heights = np.zeros((65, 65), np.float32)
    with pytest.raises(ValueError, match="at most 64"):
        plan.region_at(0.0, 0.0, heights, 16.0, 1.0, size=8, depth=2)
    with pytest.raises(ValueError, match="at least one chunk"):
        plan.region_at(0.0, 0.0, heights, 16.0, 1.0, size=0, depth=1)


def test_palette_colours_are_linear_rgba():
    palette = [list(rgb) for _, rgb in PALETTE]
    colours = plan.element_colours(np.array([0, 8, 5], np.uint8), palette).reshape(-1, 4)
    assert colours[1, :3] == pytest.approx(((np.array(PALETTE[8][1]) / 255 + 0.055) / 1.055) ** 2.4, rel=1e-5)
    assert (colours[:, 3] == 1.0).all() and colours[0, :3].max() == 0.0
    with pytest.raises(ValueError, match="outside the palette"):
        plan.element_colours(np.array([16], np.uint8), palette)


def test_bad_meshes_are_refused_before_blender_is_touched():
    v, f = np.zeros((4, 3), np.float32), np.array([[0, 1, 2]], np.int32)
    plan.check_mesh(v, f, np.zeros(4, np.uint8))
    for args in ((v, np.array([[0, 1, 9]], np.int32), np.zeros(4, np.uint8)),
                 (np.full((4, 3), np.nan, np.float32), f, np.zeros(4, np.uint8)),
                 (v, f, np.zeros(2, np.uint8))):
        with pytest.raises(ValueError):
            plan.check_mesh(*args)


def test_voxel_history_keys_name_the_world_and_voxel_size():
    """Each world folder at each voxel size is one history; its property name fits Blender's 63 characters
    whatever the folder's path (the path itself is kept as a value)."""
    world = "/home/artist/" + "deep/" * 40 + "scene.world|odd"
    key = plan.history_key(world, 2.0)
    assert plan.split_history_key(key) == (world, 2.0)
    assert plan.history_key(world, 4.0) != key and plan.history_key(world + "x", 2.0) != key
    assert len(plan.history_name(key)) <= 63 and plan.history_name(key) != plan.history_name(plan.history_key(world, 1))


def test_lod_rings_centre_on_the_cursor_chunk_at_the_ground():
    heights = np.full((65, 65), 100.0, np.float32)
    region = plan.region_at(10.0, -10.0, heights, 16.0, 2.0, size=4, depth=2)
    rings = plan.lod_rings(10.0, -10.0, region, 2.0, 1)
    assert rings == {"focus": [0, 0, region.chunk_min[2] + region.chunk_count[2] - 1], "radius": 1}
    assert rings["focus"][2] == int(100.0 // (CHUNK * 2.0))  # the layer holding the ground
    assert plan.lod_rings(-70.0, 70.0, region, 2.0, 0)["focus"][:2] == [-2, -2]


def panel(**changes) -> SimpleNamespace:
    """The Caves panel's settings as the add-on's defaults, with ``changes``."""
    defaults = dict(voxel_size="2", mesh_style="smooth", seed=3, cave_density=0.8, overhang=0.2, passages=0.3,
                    cover="grass", source="learned", memory=False, cave_density_from_memory=True)
    return SimpleNamespace(**{**defaults, **changes})


@pytest.mark.parametrize("changes, memory, cave_density", [
    ({}, False, 0.8),  # memory off: the artist's sliders
    ({"memory": True}, True, None),  # the world's memory: its cave density where committed edits lie near
    ({"memory": True, "cave_density_from_memory": False}, True, 0.8),  # memory, the artist's own density
    ({"memory": True, "source": "featureless"}, False, 0.8),  # plain ground has no memory to read
])
def test_the_panels_memory_switch_reaches_the_backend_as_meant(changes, memory, cave_density, tmp_path):
    params = plan.frame_params(panel(**changes), 16.0, str(tmp_path / "scene.world"))
    request = VoxelRequest.from_params("voxels", {**params, "chunk_min": [0, 0, 0], "chunk_count": [1, 1, 1]},
                                       {"heights": np.zeros((65, 65), np.float32)}, Roots([tmp_path]))
    assert request.memory is memory and request.settings.cave_density == cave_density
    assert request.settings.overhang == 0.2  # the memory does not read overhangs: always the artist's
    assert request.settings.passages == 0.3
