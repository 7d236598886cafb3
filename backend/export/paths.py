"""Output paths that cannot escape the chosen folder, and writes that are all-or-nothing.

An export may be triggered from the network (the server), so every file name is resolved and
checked against the output folder, and a crash mid-write must never leave a half file that an
engine would import as a broken terrain.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

FILE_MODE = 0o644  # mkstemp makes 0600 files; exports should be readable like any other file


def prepare_dir(out_dir: str | os.PathLike[str]) -> Path:
    """Create ``out_dir`` if needed and prove it writable; return it resolved.

    Raises ValueError when it is not a directory and PermissionError when it cannot be written,
    each naming the folder, so the CLI and the add-on can show the message as is.
    """
    path = Path(out_dir).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ValueError(f"output path {str(path)!r} exists and is not a directory") from None
    except NotADirectoryError:
        raise ValueError(f"output path {str(path)!r} has a file where a folder is expected") from None
    except PermissionError as e:
        raise PermissionError(f"cannot create output folder {str(path)!r}: {e.strerror}") from None
    except OSError as e:
        if e.errno == errno.EROFS:
            raise PermissionError(f"cannot create output folder {str(path)!r}: read-only file system") from None
        raise
    path = path.resolve()
    try:  # os.access is wrong for root and for read-only mounts; a real probe is not
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        raise PermissionError(f"output folder {str(path)!r} is not writable: {e.strerror}") from None
    return path


def safe_path(root: Path, name: str | os.PathLike[str]) -> Path:
    """``root / name`` resolved, or ValueError if it lands outside ``root``.

    Resolving follows symlinks and ``..``, so a link pointing out of the folder is refused too.
    """
    root = Path(root).resolve()
    if str(name) in ("", "."):
        raise ValueError(f"empty output file name {str(name)!r}")
    target = (root / name).resolve()
    if target == root or not target.is_relative_to(root):
        raise ValueError(f"output file {str(name)!r} resolves to {str(target)!r}, outside {str(root)!r}")
    if target.is_dir():
        raise ValueError(f"output file {str(name)!r} is an existing folder")
    return target


@contextmanager
def atomic_write(path: Path) -> Iterator[Path]:
    """Yield a temp path in the same folder; on success fsync it and ``os.replace`` it onto ``path``.

    The temp keeps ``path``'s suffix so writers that sniff extensions still work. On any error
    (including KeyboardInterrupt) the temp is removed and ``path`` is left as it was.
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
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a directory; the data itself is already synced
    finally:
        os.close(fd)


def write_bytes(path: Path, data: bytes | memoryview) -> Path:
    """Atomically write ``data`` to ``path``."""
    with atomic_write(path) as tmp:
        tmp.write_bytes(data)
    return path


def write_json(path: Path, obj: dict[str, Any]) -> Path:
    """Atomically write ``obj`` as indented UTF-8 JSON (sidecars are meant to be read by people too)."""
    return write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode("utf-8"))
