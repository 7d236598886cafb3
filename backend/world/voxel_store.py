"""The artist's voxel edits on disk: each edited chunk stored whole, so a world reopens with them.

Inside a world folder (the same ``<blend>.world`` as the tiles, or any folder the artist picks)::

    voxels/{voxel_size}m/x{i}_y{j}_z{k}.safetensors   density + material, JSON meta, SHA-256

A chunk absent here was never edited and comes from the chunk source again; a stored one is returned
exactly. Writes are atomic (temp file, fsync, rename: ``durable.write_bytes``) and every load verifies
the checksum, so a damaged file raises instead of being silently regenerated over the artist's work.
"""

from __future__ import annotations

import os
from pathlib import Path

from backend.durable import write_bytes
from backend.voxels.chunk import VOXEL_SIZES_M, ChunkKey, VoxelChunk

from .store import CorruptFileError, decode_checked, encode_checked, key_name

CHUNK_FORMAT = "worldsculpt.voxel_chunk.v1"


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
