"""Crash-safe file writes shared by exports and the world store.

A write goes to a temp file in the target's folder, is fsynced, renamed over the target and the
folder is fsynced: a crash at any instant leaves the old file or the new one, never half of one.
Temp names start with "." and contain ".tmp", so no reader mistakes them for real files.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

FILE_MODE = 0o644  # mkstemp makes 0600 files; outputs should be readable like any other file


def fsync_dir(folder: Path) -> None:
    """Make a rename or create inside ``folder`` durable (POSIX). Windows cannot open folders."""
    if os.name == "nt":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a directory; the file itself is already synced
    finally:
        os.close(fd)


@contextmanager
def atomic_write(path: Path) -> Iterator[Path]:
    """Yield a temp path beside ``path``; on success fsync it and ``os.replace`` it onto ``path``.

    The temp keeps ``path``'s suffix so writers that sniff extensions still work. On any error
    (KeyboardInterrupt included) the temp is removed and ``path`` is left as it was.
    """
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_bytes(path: Path, data: bytes | memoryview) -> Path:
    """Atomically replace ``path`` with ``data``."""
    with atomic_write(path) as tmp:
        tmp.write_bytes(data)
    return path
