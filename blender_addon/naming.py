"""File names for exports made in Blender. No bpy."""

from __future__ import annotations

from pathlib import Path


def new_export_path(folder: Path, stem: str, suffix: str) -> Path:
    """``<stem>_blender<suffix>`` in ``folder``, or ``<stem>_blender_2<suffix>``, ``_3``... : never a file that
    exists (the backend's own export of ``<stem>`` or an earlier Blender export stays as it was)."""
    path, n = folder / f"{stem}_blender{suffix}", 1
    while path.exists():
        n += 1
        path = folder / f"{stem}_blender_{n}{suffix}"
    return path
