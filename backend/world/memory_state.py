"""One world's memory: bounded however large the world grows, persisted in its folder, and a pure
function of the world's edit log.

Only artist actions write the memory: every record of ``edits.jsonl`` (a brush stroke, a style paint,
a generated tile the artist committed) writes the tile it touched, as it was right after that record,
once, in log order. Tiles streamed by exploration read the memory and never write it, so a never-edited
tile stays a function of (seed, coords, edit log) whatever order tiles are asked in.

A tile after record i is the stored tile with the later records on it undone (each brush record keeps
the window's ``before``), so the memory can always be rebuilt from the folder: when the memory file is
missing, or was written by other memory weights, it is replayed from the log. The file
(``memory/pluto.safetensors``, atomic and checksummed by the store) holds the world bank, at most
``max_regions`` region banks (the least recently written one is folded into the world bank through the
same gate when a new region needs room), the write counter and the last applied record's seq.

Region keys are (rx, ry) = (floor(tx / region_tiles), floor(ty / region_tiles)) of tile (tx, ty); window
positions are base-level cells (row, col) of the window's top-left corner, rows south, columns east.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from backend.grids import downsample
from backend.memory.banks import MemoryBanks
from backend.memory.network import NEIGHBOURS, MemoryDenoiser, MemoryNetwork, null_tokens
from backend.models.terrain import TerrainModel
from backend.world.region import WindowMemory
from backend.world.seeding import tile_generator
from backend.world.store import Coords, EditRecord, WorldStore

STATE_NAME = "pluto"  # memory/pluto.safetensors: the memory network's first name, kept so older worlds open
EditedTile = Callable[[Coords], "np.ndarray | None"]  # heights (metres) of an artist-edited tile, else None


def fingerprint(network: MemoryNetwork) -> bytes:
    """SHA-256 of the memory's weights: a saved state is only valid for the weights that wrote it."""
    h = hashlib.sha256()
    for name, t in sorted(network.state_dict().items()):
        h.update(name.encode() + b"\0" + t.detach().cpu().contiguous().numpy().tobytes())
    return h.digest()


class WorldMemory(MemoryBanks):
    """The memory state of one world folder, written from its edit log by the memory model's MemoryNetwork."""

    def __init__(self, store: WorldStore, model: TerrainModel, height_m: float):
        denoiser = model.denoiser
        if not isinstance(denoiser, MemoryDenoiser):
            raise ValueError("WorldMemory needs the memory-conditioned base model (terrain_memory.safetensors)")
        self.store, self.height_m = store, float(height_m)
        self._log_size = -1
        super().__init__(denoiser.network, model.device)
        cells = store.tile_size - 1
        if cells % self.cfg.tile_cells:
            raise ValueError(f"tiles of {cells} cells do not pool to the memory's {self.cfg.tile_cells} base cells")
        self.pool = cells // self.cfg.tile_cells
        self.fingerprint = fingerprint(self.network)

    @classmethod
    def open(cls, store: WorldStore, model: TerrainModel, height_m: float) -> WorldMemory:
        """The world's saved memory (or the learned baseline), brought up to date with its edit log."""
        memory = cls(store, model, height_m)
        memory._load()
        memory.sync()
        return memory

    def reset(self) -> None:
        """The learned baseline: what a world that was never edited remembers."""
        super().reset()
        self.applied_seq = -1

    # --- writing ----------------------------------------------------------------------------------
    def _base_tile(self, heights: np.ndarray) -> Tensor:
        """Tile heights (metres, tile_size²) -> [1, 1, n, n] base cells in network space."""
        n = self.store.tile_size - 1
        x = torch.from_numpy(np.ascontiguousarray(heights[:n, :n], np.float32)) / self.height_m * 2 - 1
        return downsample(x, self.pool)[None, None]

    def _tokens(self, coords: Coords, heights: np.ndarray, level: int, stream: str) -> Tensor:
        """[1, K, D] tokens of a tile, noise-augmented at ``write_sigma`` with world-seeded noise."""
        x = self._base_tile(heights)
        noise = torch.randn(x.shape, generator=tile_generator(self.store.seed, coords, level, stream))
        sigma = self.cfg.write_sigma
        with torch.no_grad():
            return self.network.encode((x + sigma * noise).to(self.device),
                                     torch.tensor([sigma], device=self.device)).cpu()

    def write(self, coords: Coords, heights: np.ndarray, seq: int) -> None:
        """Write tile `coords` (heights in metres) as it was after edit `seq`: its region bank, then the world."""
        tx, ty = coords
        key = (tx // self.cfg.region_tiles, ty // self.cfg.region_tiles)
        self.write_tokens(key, self._tokens(coords, heights, seq, "memory-write"))

    # --- the edit log -----------------------------------------------------------------------------
    def sync(self) -> int:
        """Write every edit logged since the last sync (cheap when the log did not grow); returns their count."""
        size = self.store.log_path.stat().st_size if self.store.log_path.exists() else 0
        if size == self._log_size:
            return 0
        records = self.store.edits()
        todo = self._tiles_after([r for r in records if r.seq > self.applied_seq], records)
        for record, heights in todo:
            if heights is not None:
                self.write(record.coords, heights, record.seq)
            self.applied_seq = record.seq
        if todo:
            self.save()
        self._log_size = size
        return len(todo)

    def _tiles_after(self, new: list[EditRecord], records: list[EditRecord]) -> list[tuple[EditRecord, np.ndarray | None]]:
        """Each new record with its tile as it was right after it: the stored tile with later edits undone
        (newest first); None when the tile is missing or not a tile of this world."""
        if not new:
            return []
        current: dict[Coords, np.ndarray | None] = {}
        after: dict[int, np.ndarray | None] = {}
        for record in reversed(records[new[0].seq:]):
            key = record.coords
            if key not in current:
                tile = self.store.get_tile(key)
                shape_ok = tile is not None and tile.field.heights.shape == (self.store.tile_size,) * 2
                current[key] = tile.field.heights.copy() if shape_ok else None
            heights = current[key]
            after[record.seq] = None if heights is None else heights.copy()
            before = None if heights is None else self.store.edit_deltas(record).get("before")
            if before is not None:
                r0, c0, r1, c1 = record.window
                heights[r0:r1, c0:c1] = before
        return [(r, after[r.seq]) for r in new]

    # --- persistence ------------------------------------------------------------------------------
    def state(self) -> dict[str, np.ndarray]:
        keys = list(self.regions)
        slots = (np.stack([self.regions[k].numpy() for k in keys]) if keys
                 else np.zeros((0, self.cfg.region_slots, self.cfg.dim), np.float32))
        return {"world": self.world.numpy(), "region_keys": np.array(keys, np.int64).reshape(-1, 2),
                "region_slots": slots, "region_last_write": np.array([self.last_write[k] for k in keys], np.int64),
                "writes": np.array(self.writes, np.int64), "applied_seq": np.array(self.applied_seq, np.int64),
                "fingerprint": np.frombuffer(self.fingerprint, np.uint8)}

    def save(self) -> None:
        self.store.save_memory(STATE_NAME, self.state())

    def _load(self) -> None:
        """The saved state, unless it is absent or was written by other weights (then: replay the log)."""
        state = self.store.load_memory(STATE_NAME)
        if state is None or state["fingerprint"].tobytes() != self.fingerprint \
                or state["world"].shape != tuple(self.world.shape):
            self.reset()
            return
        self.world = torch.from_numpy(state["world"].copy())
        keys = [tuple(int(v) for v in k) for k in state["region_keys"]]
        self.regions = {k: torch.from_numpy(s.copy()) for k, s in zip(keys, state["region_slots"])}
        self.last_write = {k: int(w) for k, w in zip(keys, state["region_last_write"])}
        self.writes, self.applied_seq = int(state["writes"]), int(state["applied_seq"])

    # --- reading ----------------------------------------------------------------------------------
    def reader(self, edited: EditedTile, null: bool = False) -> WindowMemory:
        """Tokens for base windows at the given origins, memoised for one sampling run.

        `edited` gives the heights of artist-edited tiles (the neighbourhood tokens); ``null`` reads the
        memory-dropout null instead (the ablation "memory model without memory").
        """
        tiles: dict[Coords, Tensor | None] = {}
        windows: dict[tuple[int, int], Tensor] = {}

        def tile_tokens(coords: Coords) -> Tensor | None:
            if coords not in tiles:
                heights = edited(coords)
                tiles[coords] = None if heights is None else self._tokens(coords, heights, 0, "memory-read")[0]
            return tiles[coords]

        def read(origins: list[tuple[int, int]]) -> Tensor:
            if null:
                return null_tokens(self.cfg, len(origins), self.device)
            for origin in origins:
                if origin not in windows:
                    windows[origin] = self._read_window(origin, tile_tokens)
            return torch.stack([windows[o] for o in origins]).to(self.device)

        return read

    def _read_window(self, origin: tuple[int, int], tile_tokens: Callable[[Coords], Tensor | None]) -> Tensor:
        n, span = self.cfg.tile_cells, self.cfg.tile_cells * self.cfg.region_tiles
        r0, c0 = origin
        cr, cc = r0 + n // 2, c0 + n // 2
        tx, ty = cc // n, cr // n
        key = (tx // self.cfg.region_tiles, ty // self.cfg.region_tiles)
        region = self.region(key)
        offset = torch.tensor([[(cr - key[1] * span) / span, (cc - key[0] * span) / span]])
        absent = torch.zeros(self.cfg.tile_tokens, self.cfg.dim)
        found = [tile_tokens((tx + dx, ty + dy)) for dy, dx in NEIGHBOURS]
        neighbours = torch.stack([absent if t is None else t for t in found])[None]
        present = torch.tensor([[t is not None for t in found]])
        relative = torch.tensor([[((ty + dy) * n - r0) / n, ((tx + dx) * n - c0) / n] for dy, dx in NEIGHBOURS])[None]
        with torch.no_grad():
            tokens = self.network.read(*(t.to(self.device) for t in (self.world[None], region[None], offset, neighbours,
                                                                   present, relative)))
        return tokens[0].cpu()
