"""The ``edit_log`` job: the artist undid (or redid) edits in Blender; the world follows.

Each undone edit gets an ``undo`` record in the world's log (its deltas swapped, params ``{"undoes": seq}``)
and the world's tile goes back to the heights before it; a redo appends ``redo`` and puts the edit's heights
back. ``WorldStore.active_edits`` is then the history Blender shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backend.terrain import Heightfield
from backend.world.store import REDO_KIND, UNDO_KIND, WorldStore

from .params import check_keys
from .paths import Roots

_KEYS = {"world", "undo", "redo"}


def _seqs(name: str, value: Any) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value):
        raise ValueError(f"{name} must be a list of edit numbers (ints >= 0), got {value!r}")
    return tuple(value)


@dataclass(frozen=True)
class EditLogRequest:
    world: Path
    undo: tuple[int, ...]
    redo: tuple[int, ...]

    @classmethod
    def from_params(cls, params: Any, roots: Roots) -> "EditLogRequest":
        """ValueError names the offending field; ``world`` must lie inside ``roots`` (OutsideRoots)."""
        check_keys("edit_log", params, _KEYS)
        world = roots.confine(params.get("world"), "world")
        if not (world / "world.json").is_file():
            raise ValueError(f"world must be the folder of an existing world, got {params.get('world')!r}")
        return cls(world, _seqs("undo", params.get("undo", [])), _seqs("redo", params.get("redo", [])))

    def run(self) -> dict[str, list[int]]:
        """Undo, then redo, each edit still in the state that allows it; returns what was done."""
        store = WorldStore.open(self.world)
        by_seq = {r.seq: r for r in store.edits()}
        missing = sorted(set(self.undo + self.redo) - set(by_seq))
        if missing:
            raise ValueError(f"world {str(self.world)!r} has no edits {missing}")
        active = {r.seq for r in store.active_edits()}
        done: dict[str, list[int]] = {"undone": [], "redone": []}
        for seq, kind, key, wanted in [*((s, UNDO_KIND, "undoes", True) for s in self.undo),
                                       *((s, REDO_KIND, "redoes", False) for s in self.redo)]:
            if (seq in active) != wanted:
                continue  # already as asked (a repeated request changes nothing)
            record = by_seq[seq]
            deltas = store.edit_deltas(record)
            before, after = (deltas["after"], deltas["before"]) if kind == UNDO_KIND else (deltas["before"], deltas["after"])
            tile = store.get_tile(record.coords)
            if tile is not None:
                heights = tile.field.heights.copy()
                r0, c0, r1, c1 = record.window
                heights[r0:r1, c0:c1] = after
                store.put_tile(record.coords, Heightfield(heights, store.cell_size), tile.meta)
            store.append_edit(kind, record.coords, record.window, {key: seq}, dict(deltas, before=before, after=after))
            active ^= {seq}
            done["undone" if kind == UNDO_KIND else "redone"].append(seq)
        return done
