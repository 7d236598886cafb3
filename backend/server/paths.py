"""Every path a request names is resolved inside the folders the backend was started with (``--root``).

A request's path is untrusted text. It is made absolute against the first root, symlinks are resolved
(``os.path.realpath``) and the result must lie in one of the roots; otherwise the request is refused
with :class:`OutsideRoots` before anything is read, created or written. The refusal is decided from the
path text and the links on the way, never from whether the target exists, and says the same either way,
so the errors tell nothing about files outside the roots.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePath
from typing import Any, Sequence

MAX_PATH_CHARS = 4096  # PATH_MAX on Linux
MAX_NAME_CHARS = 255  # one path component (NAME_MAX)


class OutsideRoots(ValueError):
    """A request named a path outside the backend's roots (answered ``forbidden``)."""


def default_roots() -> tuple[Path, ...]:
    """Without ``--root``: the user's home folder, where an artist's .blend files and exports live."""
    return (Path.home(),)


class Roots:
    def __init__(self, folders: Sequence[str | os.PathLike[str]]):
        if not folders:
            raise ValueError("at least one root folder is needed")
        self.folders = tuple(Path(os.path.realpath(f)) for f in folders)

    def confine(self, value: Any, what: str) -> Path:
        """``value`` as a real absolute path inside a root; ValueError (OutsideRoots) otherwise."""
        if not isinstance(value, str) or not value:
            raise ValueError(f"{what} must be a non-empty path string, got {value!r:.100}")
        if len(value) > MAX_PATH_CHARS or "\0" in value \
                or any(len(part) > MAX_NAME_CHARS for part in PurePath(value).parts):
            raise ValueError(f"{what} is not a usable path: at most {MAX_PATH_CHARS} characters, "
                             f"{MAX_NAME_CHARS} per folder or file name, no NUL (got {len(value)} characters)")
        path = Path(value)
        try:
            real = Path(os.path.realpath(path if path.is_absolute() else self.folders[0] / path))
        except (OSError, ValueError) as exc:  # a link loop, an unreadable folder on the way
            raise ValueError(f"{what} {value!r:.200} cannot be resolved: {getattr(exc, 'strerror', None) or exc}") from None
        if any(real == root or real.is_relative_to(root) for root in self.folders):
            return real
        raise OutsideRoots(f"{what} {value!r:.200} lies outside the folders this backend may use "
                           f"({', '.join(map(str, self.folders))}); start the backend with --root to allow another")
