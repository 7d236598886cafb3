"""Walks over the voxel corpus's regions: the training data of a voxel world's memory (``backend.memory`` at dims=3).

One item is a training window of the voxel model (40³ cells at a random place in a region, with random known
cells, as ``voxel_corpus.VoxelWindowDataset`` makes them) and, as the context its memory is written from, up to
``max_context`` other chunks of the same region (any of its 2 x 3 x 3, not only the window's neighbours) in
random order: the artist's committed chunks around a chunk being generated. The chunk holding the window's
centre is never in the context: a world writes its edited chunks and generates the others. Chunks are the
voxel model's folded channels (``backend.voxels.channels``: 24 x 16³ for a 32³ chunk). The whole region is
first turned by one of the 8 horizontal symmetries, so context and window agree, and placed at a random
offset (0 .. region_tiles - 1 chunks on each axis) in chunk keys, so its chunks fall into memory regions of
``region_tiles``³ chunks as a world's chunks do.

Geometry is ``backend.world.voxel_memory``'s (a world's): positions are (z up, row south, col east) in cells of
the chunk grid; the neighbours are the 3 x 3 x 3 chunks around the chunk holding the window's centre. Items
are pure functions of their index, so a resumed run sees the batches of an unbroken one.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

import numpy as np
import torch
from torch import Tensor

from backend.data.datasets import N_DIHEDRAL, dihedral
from backend.data.voxel_corpus import (REGION_CHUNKS, WINDOW, VoxelRegions, known_mask, region_conditioning,
                                       spatial_condition)
from backend.diffusion.preconditioning import Conditioning
from backend.memory.chunk_geometry import NEIGHBOURS_3D, memory_geometry
from backend.voxels import channels as ch
from backend.voxels.chunk import CHUNK


def held_out(regions: VoxelRegions, per_style: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) region indices: the last ``per_style`` regions of every style are held out."""
    held = np.concatenate([np.flatnonzero(regions.style == s)[-per_style:] if per_style else np.zeros(0, np.int64)
                           for s in np.unique(regions.style)])
    train = np.setdiff1d(np.arange(len(regions)), held)
    if not len(train) or not len(held):
        raise ValueError(f"holding out {per_style} regions a style leaves {len(train)} to train, {len(held)} held out")
    return train, np.sort(held)


def region_channels(regions: VoxelRegions, r: int, k: int) -> tuple[Tensor, Tensor]:
    """Region r's model channels (3, Z, Y, X) and terrain depth (Z, Y, X), turned by symmetry k."""
    depth = regions.terrain_depth(r)
    x = ch.encode(regions.density[r].astype(np.float32), regions.material[r], depth, regions.voxel_size)
    return dihedral(torch.from_numpy(x), k).contiguous(), dihedral(torch.from_numpy(depth), k).contiguous()


def region_chunk(x: Tensor, chunk: tuple[int, ...]) -> Tensor:
    """The folded channels [3 * FOLD³, CHUNK / FOLD, ...] of chunk (z, row, col) of region channels x (3, Z, Y, X)."""
    box = tuple(slice(c * CHUNK, (c + 1) * CHUNK) for c in chunk)
    return ch.fold(x[(slice(None), *box)][None])[0]


Chunk = tuple[int, int, int]  # (z, row, col) of a chunk in its region


@dataclass(frozen=True)
class WalkPlan:
    """Where one item lies: region r turned by symmetry k, the window at cell ``lo``, its known cells, the chunk
    holding its centre, the context chunks in write order, the region's offset in chunk keys, the folded bank."""

    r: int
    k: int
    lo: Chunk
    known: np.ndarray
    target: Chunk
    walk: list[Chunk]
    shift: Chunk
    fold: int


class VoxelWalkDataset:
    """Items (window [24, 20³], cond, extras) over the regions ``indices`` of a voxel corpus; see the module docstring.

    extras as ``backend.data.walks.WalkDataset``'s at dims=3: context [L, 24, 16, 16, 16], ctx_valid [L],
    ctx_region [L], nb_index [27], nb_present [27], nb_relative [27, 3], offset [3], target_region, fold_region
    (-1 = none), region_count (L = max_context).
    """

    windows_per_region = 64

    def __init__(self, regions: VoxelRegions, indices: np.ndarray, region_tiles: int, max_context: int = 6,
                 fold_probability: float = 0.25, seed: int = 0, min_context: int = 0):
        if tuple(regions.density.shape[1:]) != tuple(CHUNK * c for c in REGION_CHUNKS):
            raise ValueError(f"regions of {regions.density.shape[1:]} cells are not {REGION_CHUNKS} chunks")
        self.regions, self.indices = regions, np.asarray(indices)
        if not 0 <= min_context <= max_context < np.prod(REGION_CHUNKS):
            raise ValueError(f"need 0 <= min_context <= max_context < {np.prod(REGION_CHUNKS)}, got {min_context}, "
                             f"{max_context}")
        self.region_tiles, self.min_context, self.max_context = region_tiles, min_context, max_context
        self.fold_probability, self.seed = fold_probability, seed
        self.per_axis = [-(-(n + region_tiles - 1) // region_tiles) for n in REGION_CHUNKS]  # memory regions met

    def __len__(self) -> int:
        return len(self.indices) * self.windows_per_region

    def _bank(self, key: tuple[int, ...]) -> int:
        """The index of a chunk key's memory region among the ``per_axis`` regions this region can meet."""
        z, y, x = (k // self.region_tiles for k in key)
        return (z * self.per_axis[1] + y) * self.per_axis[2] + x

    def plan(self, i: int) -> WalkPlan:
        """Item i's draws, a pure function of (seed, i)."""
        rng = np.random.default_rng((self.seed, i))
        k = int(rng.integers(N_DIHEDRAL))
        lo = tuple(int(rng.integers(0, n - WINDOW + 1)) for n in self.regions.density.shape[1:])
        known = known_mask(rng)
        target = tuple((a + WINDOW // 2) // CHUNK for a in lo)
        others = [c for c in product(*map(range, REGION_CHUNKS)) if c != target]
        order = rng.permutation(len(others))
        walk = [others[j] for j in order[:int(rng.integers(self.min_context, self.max_context + 1))]]
        shift = tuple(int(s) for s in rng.integers(0, self.region_tiles, 3))
        fold = int(rng.integers(np.prod(self.per_axis))) if rng.random() < self.fold_probability else -1
        return WalkPlan(int(self.indices[i // self.windows_per_region]), k, lo, known, target, walk, shift, fold)

    def __getitem__(self, i: int) -> tuple[Tensor, Conditioning, dict[str, Tensor]]:
        plan = self.plan(i)
        reg, lo, target, walk = self.regions, plan.lo, plan.target, plan.walk
        x, depth = region_channels(reg, plan.r, plan.k)
        box = tuple(slice(a, a + WINDOW) for a in lo)
        window = x[(slice(None), *box)]
        spatial = spatial_condition(depth[box].numpy(), plan.known, window.numpy(), reg.voxel_size)

        def key(chunk: tuple[int, ...]) -> tuple[int, ...]:
            return tuple(c + s for c, s in zip(chunk, plan.shift))

        L = self.max_context
        context = torch.zeros(L, ch.N_CHANNELS * ch.FOLD**3, *(CHUNK // ch.FOLD,) * 3)
        valid, bank = torch.zeros(L), torch.zeros(L, dtype=torch.long)
        for j, chunk in enumerate(walk):
            context[j], valid[j], bank[j] = region_chunk(x, chunk), 1.0, self._bank(key(chunk))
        offset, relative = memory_geometry(key(target), tuple(a + s * CHUNK for a, s in zip(lo, plan.shift)), WINDOW,
                                           self.region_tiles)
        nb_index, nb_present = torch.zeros(len(NEIGHBOURS_3D), dtype=torch.long), torch.zeros(len(NEIGHBOURS_3D))
        for j, delta in enumerate(NEIGHBOURS_3D):
            chunk = tuple(t + d for t, d in zip(target, delta))
            if chunk in walk:
                nb_index[j], nb_present[j] = walk.index(chunk), 1.0
        extras = {"context": context, "ctx_valid": valid, "ctx_region": bank, "nb_index": nb_index,
                  "nb_present": nb_present, "nb_relative": relative, "offset": offset,
                  "target_region": torch.tensor(self._bank(key(target))), "fold_region": torch.tensor(plan.fold),
                  "region_count": torch.tensor(int(np.prod(self.per_axis)))}
        return ch.fold(window[None])[0], region_conditioning(reg, plan.r, torch.from_numpy(spatial)), extras
