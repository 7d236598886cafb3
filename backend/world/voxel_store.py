"""The artist's voxel edits on disk: each edited chunk stored whole, so a world reopens with them.

Inside a world folder (the same ``<blend>.world`` as the tiles, or any folder the artist picks)::

    voxels/{voxel_size}m/x{i}_y{j}_z{k}.safetensors   density + material, JSON meta, SHA-256

    voxels/{voxel_size}m/edits/{seq}.safetensors     an edit's chunks before and after it
    voxels/{voxel_size}m/edits/log.json              each edit's chunks and which edits are undone

A chunk absent here was never edited and comes from the chunk source again; a stored one is returned
exactly. Writes are atomic (temp file, fsync, rename: ``durable.write_bytes``) and every load verifies
the checksum, so a damaged file raises instead of being silently regenerated over the artist's work.
Each brush edit keeps its chunks as they were before it (absent or stored) and after it, so Blender's undo
and redo can take it back and put it back (``set_edit``), like the terrain's edit log.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from backend.durable import write_bytes
from backend.voxels.chunk import VOXEL_SIZES_M, ChunkKey, VoxelChunk

from .store import CorruptFileError, decode_checked, encode_checked, key_name

CHUNK_FORMAT = "worldsculpt.voxel_chunk.v1"
EDIT_FORMAT = "worldsculpt.voxel_edit.v1"
Version = tuple[VoxelChunk, int] | None  # a chunk as the store holds it (with its variant), or absent


class VoxelStore:
    """Edited chunks of one voxel size in ``root/voxels/{size}m``; ``variant`` counts regenerations."""

    def __init__(self, root: str | os.PathLike[str], voxel_size: float):
        if voxel_size not in VOXEL_SIZES_M:
            raise ValueError(f"voxel_size must be one of {VOXEL_SIZES_M} metres, got {voxel_size}")
        self.voxel_size = float(voxel_size)
        self.folder = Path(root) / "voxels" / f"{self.voxel_size:g}m"

    def path(self, key: ChunkKey) -> Path:
        return self.folder / f"{key_name((key.i, key.j, key.k))}.safetensors"

    def get(self, key: ChunkKey) -> tuple[VoxelChunk, int] | None:
        """(the stored chunk, its variant), None if it was never edited; CorruptFileError if damaged."""
        path = self.path(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        tensors, meta = decode_checked(data, path)
        try:
            if meta.get("format") != CHUNK_FORMAT or tuple(meta["key"]) != (key.i, key.j, key.k):
                raise ValueError(f"holds {meta.get('format')!r} chunk {meta.get('key')}, not {key}")
            chunk = VoxelChunk(key, float(meta["voxel_size"]), tensors["density"], tensors["material"])
            return chunk, int(meta["variant"])
        except (KeyError, TypeError, ValueError) as e:
            raise CorruptFileError(path, f"inconsistent voxel chunk ({e})") from e

    def put(self, chunk: VoxelChunk, variant: int) -> None:
        """Durably write the chunk (replacing the previous version); returns once it is on disk."""
        if chunk.voxel_size != self.voxel_size:
            raise ValueError(f"chunk voxel_size {chunk.voxel_size} differs from the store's {self.voxel_size}")
        key = chunk.key
        meta = {"format": CHUNK_FORMAT, "key": [key.i, key.j, key.k], "voxel_size": chunk.voxel_size,
                "variant": int(variant)}
        self.folder.mkdir(parents=True, exist_ok=True)
        write_bytes(self.path(key), encode_checked({"density": chunk.density, "material": chunk.material}, meta))

    def remove(self, key: ChunkKey) -> None:
        """Forget the chunk (the source makes it again)."""
        self.path(key).unlink(missing_ok=True)

    # -- the edits' history ------------------------------------------------------------------------------

    @property
    def _log_path(self) -> Path:
        return self.folder / "edits" / "log.json"

    def log(self) -> dict:
        """{"edits": {seq: [[i, j, k], ...]}, "undone": [seq, ...]}: every recorded edit's chunks (str seqs)."""
        try:
            return json.loads(self._log_path.read_text())
        except FileNotFoundError:
            return {"edits": {}, "undone": []}

    def record_edit(self, op: str, before: dict[ChunkKey, Version],
                    after: dict[ChunkKey, tuple[VoxelChunk, int]]) -> int:
        """Keep an edit's chunks as they were before it and after it; returns its number (1, 2, ...)."""
        log = self.log()
        seq = max(map(int, log["edits"]), default=0) + 1
        keys = sorted(after, key=lambda c: (c.i, c.j, c.k))
        tensors: dict[str, np.ndarray] = {}
        variants: dict[str, list[int | None]] = {"before": [], "after": []}
        for n, key in enumerate(keys):
            for when, version in (("before", before.get(key)), ("after", after[key])):
                variants[when].append(None if version is None else int(version[1]))
                if version is not None:
                    tensors[f"{when}.{n}.density"] = version[0].density
                    tensors[f"{when}.{n}.material"] = version[0].material
        meta = {"format": EDIT_FORMAT, "op": op, "chunks": [[c.i, c.j, c.k] for c in keys], **variants}
        (self.folder / "edits").mkdir(parents=True, exist_ok=True)
        write_bytes(self.folder / "edits" / f"{seq}.safetensors", encode_checked(tensors, meta))
        log["edits"][str(seq)] = meta["chunks"]
        write_bytes(self._log_path, json.dumps(log).encode())
        return seq

    def set_edit(self, seq: int, active: bool) -> bool:
        """Put the edit's chunks back as they were after it (``active``) or before it (undone); False when the
        edit is in that state already. KeyError for an edit never recorded."""
        log = self.log()
        if str(seq) not in log["edits"]:
            raise KeyError(seq)
        if (seq not in log["undone"]) == active:
            return False
        for key, version in self._edit_chunks(seq, "after" if active else "before"):
            if version is None:
                self.remove(key)
            else:
                self.put(*version)
        log["undone"] = sorted(set(log["undone"]) - {seq}) if active else sorted({*log["undone"], seq})
        write_bytes(self._log_path, json.dumps(log).encode())
        return True

    def _edit_chunks(self, seq: int, when: str) -> list[tuple[ChunkKey, Version]]:
        """Each chunk of edit ``seq`` as it was ``when`` ("before" or "after" it): (key, (chunk, variant) or None)."""
        path = self.folder / "edits" / f"{seq}.safetensors"
        tensors, meta = decode_checked(path.read_bytes(), path)
        out: list[tuple[ChunkKey, Version]] = []
        for n, (key, variant) in enumerate(zip(meta["chunks"], meta[when])):
            chunk_key = ChunkKey(*key)
            out.append((chunk_key, None if variant is None else (VoxelChunk(
                chunk_key, self.voxel_size, tensors[f"{when}.{n}.density"], tensors[f"{when}.{n}.material"]), variant)))
        return out

    def committed(self) -> list[tuple[int, VoxelChunk]]:
        """(seq, chunk) for every chunk an active (not undone) edit left, in edit order: what the artist committed,
        the only thing a voxel world's memory is written from (``backend.world.voxel_memory``)."""
        log = self.log()
        undone = set(log["undone"])
        return [(seq, version[0]) for seq in sorted(map(int, log["edits"])) if seq not in undone
                for _, version in self._edit_chunks(seq, "after") if version is not None]
