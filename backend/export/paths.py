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
from pathlib import Path
from typing import Any

from backend.durable import atomic_write, write_bytes

__all__ = ["atomic_write", "prepare_dir", "safe_path", "write_bytes", "write_json"]

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


def write_json(path: Path, obj: dict[str, Any]) -> Path:
    """Atomically write ``obj`` as indented UTF-8 JSON (sidecars are meant to be read by people too)."""
    return write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode("utf-8"))
