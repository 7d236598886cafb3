"""A world's memory banks: one world bank and at most ``max_regions`` region banks, written through the memory
network's gated writer. When a new region needs room, the least recently written region bank is folded into
the world bank through the same gate, so the memory stays bounded however large the world grows. Heightfield
worlds (``backend.world.memory_state``, regions of tiles) and voxel worlds (``backend.world.voxel_memory``,
regions of chunks) keep their banks here; they differ only in what a tile is and how regions are keyed.
"""

from __future__ import annotations

from collections.abc import Hashable

import torch
from torch import Tensor

from backend.memory.network import MemoryNetwork


class MemoryBanks:
    """World and region banks (CPU tensors [S, D]) in write order; the network may live on ``device``."""

    def __init__(self, network: MemoryNetwork, device: torch.device | str = "cpu"):
        self.network, self.cfg, self.device = network, network.config, device
        self.reset()

    def reset(self) -> None:
        """The learned baseline: what a world that was never edited remembers."""
        with torch.no_grad():
            self.world = self.network.world_baseline.detach().cpu().clone()
        self.regions: dict[Hashable, Tensor] = {}
        self.last_write: dict[Hashable, int] = {}
        self.writes = 0

    def nbytes(self) -> int:
        """Bytes of all memory slots now (at most ``cfg.bound_bytes()``)."""
        return (self.world.numel() + sum(r.numel() for r in self.regions.values())) * 4

    def region(self, key: Hashable) -> Tensor:
        """The region's bank, or the learned baseline of a region never written."""
        return self.regions.get(key, self.network.region_baseline.detach().cpu())

    def _write(self, bank: Tensor, tokens: Tensor) -> Tensor:
        with torch.no_grad():
            return self.network.write(bank[None].to(self.device), tokens.to(self.device))[0].cpu()

    def write_tokens(self, key: Hashable, tokens: Tensor) -> None:
        """Write a tile's tokens [1, K, D] into region ``key``'s bank, then into the world bank."""
        if key not in self.regions:
            if len(self.regions) >= self.cfg.max_regions:
                self._fold(min(self.last_write, key=self.last_write.__getitem__))
            self.regions[key] = self.network.region_baseline.detach().cpu().clone()
        self.regions[key] = self._write(self.regions[key], tokens)
        self.world = self._write(self.world, tokens)
        self.last_write[key] = self.writes
        self.writes += 1

    def _fold(self, key: Hashable) -> None:
        """Drop a region bank after writing its slots into the world bank (the bound on memory size)."""
        self.world = self._write(self.world, self.regions.pop(key)[None])
        del self.last_write[key]
