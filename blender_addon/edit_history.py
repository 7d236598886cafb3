"""What the world's edit log must undo or redo after Blender's undo or redo. No bpy.

Each committed edit's number is kept on the terrain's mesh (``SEQS_KEY``, with its world in ``WORLD_KEY``),
so Blender's undo rewinds that list with the heights. After an undo or redo, an edit this session committed
that the meshes no longer list was undone; one listed again was redone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

WORLD_KEY = "worldsculpt_edit_world"  # custom properties on the terrain mesh
SEQS_KEY = "worldsculpt_edit_seqs"


@dataclass
class History:
    """The edits this session committed, per world folder, and which of them are undone now."""

    committed: dict[str, set[int]] = field(default_factory=dict)
    undone: dict[str, set[int]] = field(default_factory=dict)

    def commit(self, world: str, seq: int) -> None:
        self.committed.setdefault(world, set()).add(seq)

    def changes(self, listed: dict[str, set[int]]) -> dict[str, tuple[list[int], list[int]]]:
        """world -> (edits to undo, edits to redo) so that the log matches what the meshes list; the
        answer is taken as done (a failed job is reported, not retried)."""
        todo: dict[str, tuple[list[int], list[int]]] = {}
        for world, seqs in self.committed.items():
            present, undone = listed.get(world, set()), self.undone.setdefault(world, set())
            undo, redo = sorted(seqs - present - undone), sorted(seqs & present & undone)
            if undo or redo:
                todo[world] = (undo, redo)
                undone.update(undo)
                undone.difference_update(redo)
        return todo

    def clear(self) -> None:
        self.committed.clear()
        self.undone.clear()
