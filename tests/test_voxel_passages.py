"""Passages: drawn pockets joined through deep rock the way water would, within reach, never through the skin."""

from dataclasses import replace

import numpy as np
from scipy import ndimage

from backend.voxels import channels as ch
from backend.voxels import passages as pa
from backend.voxels.chunk import CHUNK

VS = 2.0
SIX = ndimage.generate_binary_structure(3, 1)


def ground(surface_cells: float = 28.0) -> tuple[np.ndarray, np.ndarray]:
    """Terrain depth (metres) of a chunk whose surface lies ``surface_cells`` above its bottom; z of the cells."""
    z = VS * (np.arange(CHUNK) + 0.5)
    depth = np.broadcast_to((surface_cells * VS - z)[:, None, None], (CHUNK,) * 3).astype(np.float32)
    return depth, z


def pockets(depth: np.ndarray, *boxes: tuple[slice, slice, slice]) -> np.ndarray:
    """Channels whose change opens the given boxes (a drawn cave each) and nothing else."""
    channels = np.zeros((ch.N_CHANNELS, CHUNK, CHUNK, CHUNK), np.float32)
    channels[1] = 0.2  # other channels pass through untouched
    for box in boxes:
        channels[0][box] = -2.0
    return channels


def systems(channels: np.ndarray, depth: np.ndarray) -> int:
    return ndimage.label(ch.cave_cells_drawn(channels[0], depth, VS), structure=SIX)[1]


def joined(channels: np.ndarray, depth: np.ndarray, z: np.ndarray, seed: int = 0, **settings) -> np.ndarray:
    resistance = pa.resistance_field(seed, z, np.arange(CHUNK) * -VS, np.arange(CHUNK) * VS)
    return pa.joined_caves(channels, depth, z, VS, resistance, replace(pa.PASSAGES, **settings))


def test_near_pockets_are_joined_through_deep_rock_only() -> None:
    depth, z = ground()
    a, b = (slice(6, 9), slice(10, 13), slice(6, 9)), (slice(6, 9), slice(10, 13), slice(16, 19))
    before = pockets(depth, a, b)
    after = joined(before, depth, z)
    assert systems(before, depth) == 2 and systems(after, depth) == 1
    opened = ch.cave_cells_drawn(after[0], depth, VS) & ~ch.cave_cells_drawn(before[0], depth, VS)
    assert opened.sum() > 7  # at least the rock between them (7 cells) and the tube around
    assert (ch.tsdf(depth, VS)[opened] >= 1).all()  # deep rock only: the skin is kept
    assert np.array_equal(after[1:], before[1:]) and np.array_equal(after[0][~opened], before[0][~opened])
    assert np.array_equal(after, joined(before, depth, z))  # deterministic


def test_pockets_out_of_reach_or_specks_stay_apart() -> None:
    depth, z = ground()
    far = pockets(depth, (slice(4, 7), slice(4, 7), slice(2, 5)), (slice(4, 7), slice(26, 29), slice(26, 29)))
    assert np.array_equal(joined(far, depth, z, reach=10.0), far)
    specks = pockets(depth, (slice(6, 7), slice(10, 11), slice(6, 8)), (slice(6, 7), slice(10, 11), slice(12, 14)))
    assert np.array_equal(joined(specks, depth, z), specks)  # 2-cell pockets are below min_cells
    assert np.array_equal(joined(pockets(depth), depth, z), pockets(depth))  # no caves: nothing to join


def test_a_passage_never_breaches_the_surface() -> None:
    depth, z = ground(surface_cells=12.0)  # deep rock (tsdf 1, 4 m down) only below z cell 10
    a, b = (slice(2, 5), slice(10, 13), slice(4, 7)), (slice(2, 5), slice(10, 13), slice(24, 27))
    resistance = np.ones((CHUNK,) * 3, np.float32)
    resistance[:10, :, 8:23] = 20.0  # the deep way between them is hard rock: the skin would be the cheap way
    after = pa.joined_caves(pockets(depth, a, b), depth, z, VS, resistance, replace(pa.PASSAGES, reach=5000.0))
    opened = ch.cave_cells_drawn(after[0], depth, VS)
    assert systems(after, depth) == 1 and not opened[ch.tsdf(depth, VS) < 1].any()


def test_resistance_is_fixed_in_world_coordinates_by_the_seed() -> None:
    z, y, x = VS * np.arange(40.0), -VS * np.arange(40.0), VS * np.arange(40.0)
    whole = pa.resistance_field(3, z, y, x)
    part = pa.resistance_field(3, z[8:], y[16:], x[24:])  # another chunk's cells at the same world points
    assert np.array_equal(whole[8:, 16:, 24:], part)
    assert (whole > 0).all() and whole.std() > 0.1
    assert not np.allclose(whole, pa.resistance_field(4, z, y, x))
