"""Per-tile random seeds derived from the world seed and the tile's coordinates.

A never-edited tile must regenerate identically whenever and in whatever order it is asked for, so
its randomness may depend only on (world seed, coords, level, stream), never on a shared RNG that
earlier requests advanced. blake2b of the packed integers gives O(1) random access and is stable
across Python versions and platforms (unlike ``hash()``).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

_PERSON = b"worldsculpt.seed"  # blake2b personalisation (max 16 bytes): separates us from other hashes
_INT64 = (-(2**63), 2**63 - 1)


def _check_int(name: str, value: object, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if not lo <= int(value) <= hi:
        raise ValueError(f"{name} must be in [{lo}, {hi}], got {value}")
    return int(value)


def seed_digest(world_seed: int, coords: Sequence[int], level: int = 0, stream: str = "") -> bytes:
    """16 bytes identifying (world_seed, coords, level, stream); coords may be 2D tiles or 3D chunks.

    The coordinate count is packed too, so tile (1, 2) and chunk (1, 2, 0) never share a seed.
    """
    seed = _check_int("world_seed", world_seed, 0, 2**64 - 1)
    if len(coords) not in (2, 3):
        raise ValueError(f"coords must be (tx, ty) or (cx, cy, cz), got {tuple(coords)!r}")
    packed_coords = [_check_int("coordinate", c, *_INT64) for c in coords]
    lvl = _check_int("level", level, *_INT64)
    packed = struct.pack(f"<QB{len(coords)}qq", seed, len(coords), *packed_coords, lvl)
    return hashlib.blake2b(packed + stream.encode("utf-8"), digest_size=16, person=_PERSON).digest()


def tile_seed(world_seed: int, coords: Sequence[int], level: int = 0, stream: str = "") -> int:
    """A 63-bit seed, valid for ``torch.Generator.manual_seed`` and ``np.random.default_rng``."""
    return int.from_bytes(seed_digest(world_seed, coords, level, stream)[:8], "little") >> 1


def tile_seed_sequence(
    world_seed: int, coords: Sequence[int], level: int = 0, stream: str = ""
) -> np.random.SeedSequence:
    """Full 128 bits of entropy for numpy; ``.spawn()`` it for sub-streams within a tile."""
    return np.random.SeedSequence(int.from_bytes(seed_digest(world_seed, coords, level, stream), "little"))


def tile_rng(world_seed: int, coords: Sequence[int], level: int = 0, stream: str = "") -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(tile_seed_sequence(world_seed, coords, level, stream)))


def tile_generator(
    world_seed: int, coords: Sequence[int], level: int = 0, stream: str = "", device: str = "cpu"
) -> torch.Generator:
    """A torch.Generator seeded for this tile (torch imported lazily: the store does not need it)."""
    import torch

    generator = torch.Generator(device=device)
    generator.manual_seed(tile_seed(world_seed, coords, level, stream))
    return generator
