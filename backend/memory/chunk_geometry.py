"""Where a voxel chunk's memory read looks: the offsets of its neighbour chunks and its place in its region.

Shared by the walks the voxel memory trains on (``backend.data.voxel_walks``) and a voxel world's memory
(``backend.world.voxel_memory``), so training and serving read the same geometry. Chunks and cells are
(z, row, col) in key space: a chunk key (i east, j south, k up) starts at cell (k, j, i) x CHUNK.
"""

from __future__ import annotations

import torch
from torch import Tensor

from backend.memory.network import neighbour_offsets
from backend.voxels.chunk import CHUNK

NEIGHBOURS_3D = neighbour_offsets(3)  # (dz, drow, dcol) of the chunks read around a window


def memory_geometry(target: tuple[int, ...], origin: tuple[int, ...], window: int,
                    region_tiles: int) -> tuple[Tensor, Tensor]:
    """(the window centre's offset in the target chunk's memory region [3] (0..1), each neighbour chunk's origin
    minus the window's origin in chunks [27, 3]) for a ``window``-cell window at cell ``origin`` whose centre lies
    in chunk ``target``; chunks and cells are (z, row, col) in key space."""
    span = region_tiles * CHUNK
    region = tuple(t // region_tiles for t in target)
    centre = [o + window / 2 for o in origin]
    offset = torch.tensor([(c - r * span) / span for c, r in zip(centre, region)], dtype=torch.float32)
    relative = torch.tensor([[((t + d) * CHUNK - o) / CHUNK for t, d, o in zip(target, delta, origin)]
                             for delta in NEIGHBOURS_3D], dtype=torch.float32)
    return offset, relative
