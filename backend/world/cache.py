"""A bounded LRU cache of tiles in memory, so tiled generation can revisit neighbours cheaply.

Bounded by entry count and/or bytes so an unbounded world never grows the backend's memory without
limit. Values are stored by reference: treat cached tiles as read-only (the store is the truth,
write edits through `WorldStore.put_tile` and then `put` the new tile here).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from backend.terrain import Heightfield
from backend.world.store import Coords, Tile

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LRUCache(Generic[K, V]):
    """Least-recently-used cache holding at most `max_items` entries and `max_bytes` (per `sizeof`)."""

    def __init__(
        self,
        max_items: int | None = None,
        max_bytes: int | None = None,
        sizeof: Callable[[V], int] | None = None,
    ):
        if max_items is None and max_bytes is None:
            raise ValueError("LRUCache needs max_items or max_bytes, got neither (it would be unbounded)")
        if max_items is not None and max_items < 1:
            raise ValueError(f"max_items must be >= 1, got {max_items}")
        if max_bytes is not None and (max_bytes < 1 or sizeof is None):
            raise ValueError(f"max_bytes={max_bytes} needs to be >= 1 and a sizeof function")
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._sizeof = sizeof
        self._entries: OrderedDict[K, tuple[V, int]] = OrderedDict()  # oldest first
        self._nbytes = 0
        self._lock = threading.Lock()  # generation workers and the request loop may share it

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    @property
    def nbytes(self) -> int:
        return self._nbytes

    def get(self, key: K) -> V | None:
        """The cached value (now most recently used), or None."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def put(self, key: K, value: V) -> None:
        """Insert or replace, then evict least-recently-used entries until within bounds.

        A value larger than `max_bytes` on its own is not cached (it would evict everything).
        """
        size = self._sizeof(value) if self._sizeof is not None else 0
        with self._lock:
            self._remove(key)
            if self.max_bytes is not None and size > self.max_bytes:
                return
            self._entries[key] = (value, size)
            self._nbytes += size
            while (self.max_items is not None and len(self._entries) > self.max_items) or (
                self.max_bytes is not None and self._nbytes > self.max_bytes
            ):
                _, (_, evicted) = self._entries.popitem(last=False)
                self._nbytes -= evicted

    def pop(self, key: K) -> V | None:
        with self._lock:
            entry = self._remove(key)
            return None if entry is None else entry[0]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._nbytes = 0

    def keys(self) -> list[K]:
        """Keys from least to most recently used."""
        with self._lock:
            return list(self._entries)

    def _remove(self, key: K) -> tuple[V, int] | None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._nbytes -= entry[1]
        return entry


def heightfield_nbytes(field: Heightfield) -> int:
    """Array bytes held by a heightfield (heights, masks, splat)."""
    total = field.heights.nbytes + sum(m.nbytes for m in field.masks.values())
    return total + (field.splat.nbytes if field.splat is not None else 0)


def tile_cache(max_tiles: int | None = None, max_bytes: int | None = None) -> LRUCache[Coords, Tile]:
    """An LRU of `Tile`s keyed by tile coords, bounded by count and/or array bytes."""
    return LRUCache(max_tiles, max_bytes, sizeof=lambda tile: heightfield_nbytes(tile.field))
