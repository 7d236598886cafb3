"""A voxel world's memory: the heightfield worlds' memory (``backend.memory`` at dims=3) over the voxel edit log.

Only the artist's committed voxel edits write it: the chunks each active edit of the world's voxel store left
(``VoxelStore.committed``), in edit order, each into its region's bank and the world bank. Generated chunks
would read it and never write it, so a chunk stays a function of (world seed, chunk key, edit log, terrain). It
is built from the log (one encoder pass per committed chunk; no state on disk to go stale), so after a restart
the same log gives the same memory bit for bit. A chunk is written as the voxel model's folded channels over the
terrain's depth there, noise-augmented at ``write_sigma`` with noise drawn from (world seed, chunk key, edit), as
in training.

A world that opts into memory draws its chunks with ``MemoryChunks``: the memory-conditioned voxel model reads
the chunk's tokens, and every slider the artist left unset is the memory's slider readout's estimate
(``backend.memory.readout``) with the slider guidance, as if the artist had set it; sliders the artist sets win.
The memory adapter alone carries little of the committed chunks' character into what is drawn; the readout's
sliders do (``reports/voxel_memory/``).

Geometry: a chunk key (i east, j south, k up) starts at cell (k, j, i) x CHUNK in (z, row, col); region banks
are keyed (k, j, i) // region_tiles; a chunk is read as the model's window (the chunk and ``margin`` cells
around it) with its 3 x 3 x 3 neighbourhood's latest committed chunks as neighbour tokens.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable

import numpy as np
import torch
from torch import Tensor

from backend.memory.banks import MemoryBanks
from backend.memory.chunk_geometry import NEIGHBOURS_3D, memory_geometry
from backend.memory.network import MemoryDenoiser, MemoryNetwork
from backend.memory.readout import SliderReadout
from backend.voxels import channels as ch
from backend.voxels.chunk import CHUNK, ChunkKey, VoxelChunk

Depth = Callable[[ChunkKey], np.ndarray]  # the terrain depth (metres, CHUNK³) at a chunk's cells


def chunk_tile(chunk: VoxelChunk, depth: np.ndarray) -> Tensor:
    """The chunk as the voxel model's folded channels [3 * FOLD³, CHUNK / FOLD, ...] over terrain ``depth``."""
    return ch.fold_numpy(ch.encode(chunk.density, chunk.material, depth, chunk.voxel_size))


def write_noise(seed: int, key: ChunkKey, seq: int, shape: tuple[int, ...]) -> Tensor:
    """The context noise of a committed chunk, from (world seed, chunk key, edit) alone."""
    text = f"voxel-memory:{seed}:{key.i}:{key.j}:{key.k}:{seq}".encode()
    generator = torch.Generator().manual_seed(int.from_bytes(hashlib.sha256(text).digest()[:8], "little") >> 1)
    return torch.randn(shape, generator=generator)


def _zjk(key: ChunkKey) -> tuple[int, int, int]:
    return key.k, key.j, key.i


class VoxelMemory(MemoryBanks):
    """The banks written from a world's committed chunks, and the tokens a chunk being generated reads."""

    def __init__(self, network: MemoryNetwork, seed: int, device: torch.device | str = "cpu"):
        if network.config.dims != 3:
            raise ValueError(f"a voxel world's memory needs a dims=3 memory network, got dims={network.config.dims}")
        super().__init__(network, device)
        self.seed = int(seed)
        self.latest: dict[ChunkKey, Tensor] = {}  # each committed chunk's tokens [K, D] as last written

    @classmethod
    def from_edits(cls, denoiser: MemoryDenoiser, seed: int, edits: Iterable[tuple[int, VoxelChunk]],
                   depth: Depth, device: torch.device | str = "cpu") -> VoxelMemory:
        """The memory written from ``edits`` ((seq, chunk) in edit order)."""
        memory = cls(denoiser.network, seed, device)
        for seq, chunk in edits:
            memory.commit(seq, chunk, depth(chunk.key))
        return memory

    def commit(self, seq: int, chunk: VoxelChunk, depth: np.ndarray) -> None:
        """Write a committed chunk (as edit ``seq`` left it): its region's bank, then the world bank."""
        x = chunk_tile(chunk, depth)[None]
        sigma = self.cfg.write_sigma
        noised = x + sigma * write_noise(self.seed, chunk.key, seq, tuple(x.shape))
        with torch.no_grad():
            tokens = self.network.encode(noised.to(self.device), torch.tensor([sigma], device=self.device)).cpu()
        self.write_tokens(tuple(v // self.cfg.region_tiles for v in _zjk(chunk.key)), tokens)
        self.latest[chunk.key] = tokens[0]

    def near(self, key: ChunkKey) -> bool:
        """Whether a committed chunk lies around ``key`` (its 3 x 3 x 3 neighbourhood) or in its memory region."""
        region = tuple(t // self.cfg.region_tiles for t in _zjk(key))
        return region in self.regions or any(ChunkKey(key.i + dx, key.j + dy, key.k + dz) in self.latest
                                             for dz, dy, dx in NEIGHBOURS_3D)

    def read(self, key: ChunkKey, margin: int) -> Tensor:
        """Tokens [1, T, D] for generating chunk ``key`` on a canvas of ``margin`` cells around it."""
        target = _zjk(key)
        origin = tuple(t * CHUNK - margin for t in target)
        offset, relative = memory_geometry(target, origin, CHUNK + 2 * margin, self.cfg.region_tiles)
        absent = torch.zeros(self.cfg.tile_tokens, self.cfg.dim)
        found = [self.latest.get(ChunkKey(key.i + dx, key.j + dy, key.k + dz)) for dz, dy, dx in NEIGHBOURS_3D]
        neighbours = torch.stack([absent if t is None else t for t in found])
        present = torch.tensor([t is not None for t in found], dtype=torch.float32)
        region = self.region(tuple(t // self.cfg.region_tiles for t in target))
        with torch.no_grad():
            tokens = self.network.read(*(t[None].to(self.device) for t in (self.world, region, offset, neighbours,
                                                                          present, relative)))
        return tokens.cpu()


class MemoryChunks:
    """How a chunk of a world with memory is conditioned: the tokens it reads and the sliders they imply."""

    def __init__(self, memory: VoxelMemory, readout: SliderReadout, margin: int):
        if readout.config.dim != memory.cfg.dim:
            raise ValueError(f"the readout reads {readout.config.dim}-wide tokens, the memory makes {memory.cfg.dim}")
        self.memory, self.readout, self.margin = memory, readout, int(margin)

    def condition(self, key: ChunkKey, sliders: dict[str, float]) -> tuple[Tensor, dict[str, float]]:
        """(tokens [1, T, D] chunk ``key`` reads, its sliders: ``sliders`` where the artist set them, else the
        readout's estimate where committed chunks lie near (``VoxelMemory.near``); elsewhere only the artist's.
        The readout learned from reads of a region's own chunks: from the world bank alone (far from every
        committed chunk) it read the same low cave density beside cave-rich and cave-poor regions
        (``reports/voxel_memory/`` section 3)."""
        tokens = self.memory.read(key, self.margin)
        return tokens, {**(self.readout.estimate(tokens) if self.memory.near(key) else {}), **sliders}
