"""Starting and stopping a backend process on this machine (`worldsculpt serve`, the installed command). No bpy here."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

STOP_TIMEOUT_S = 3.0  # bounded: stopping never hangs Blender for longer


def is_local(address: str) -> bool:
    """Only loopback addresses on this machine can be served by a process we start ("*" binds every
    interface: the backend refuses that without CURVE keys)."""
    if address.startswith("ipc://"):
        return True
    host = address.split("://", 1)[-1].rsplit(":", 1)[0]
    return host in ("127.0.0.1", "localhost", "[::1]")


def _is_error(line: str) -> bool:
    """A log line that says what went wrong: a logged ERROR/CRITICAL or an exception's last line."""
    text = line.strip()
    head = text.split(":", 1)[0]
    return " ERROR " in line or " CRITICAL " in line or (head.endswith(("Error", "Exception", "Exit")) and " " not in head)


class LocalBackend:
    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None
        self.log_path: Path | None = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, command: str, address: str, log_dir: Path, roots: Sequence[str] = ()) -> None:
        """Launch the backend serving ``address``; its output goes to a log file, not Blender's console.
        ``roots``: the folders request paths must lie in (none: the backend's default, the home folder)."""
        if self.running:
            raise RuntimeError(f"a local backend is already running (pid {self.process.pid})")
        if not is_local(address):
            raise ValueError(f"cannot start a backend for non-local address {address!r}")
        if not Path(command).is_file():
            raise ValueError(f"backend command {command!r} does not exist")
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / "backend.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [command, "serve", "--address", address, *(f"--root={r}" for r in roots)],
                cwd=log_dir, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=dict(os.environ, PYTHONUNBUFFERED="1"),
            )

    def take_exit_report(self) -> str | None:
        """Once, when the process we started has exited: how it ended, and its last error line if it logged one
        (not just its last line, which for a killed backend says it was serving). Then it is forgotten."""
        if self.process is None or self.process.poll() is None:
            return None
        code, self.process = self.process.returncode, None
        ended = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
        lines = self.log_path.read_text(errors="replace").splitlines() if self.log_path and self.log_path.exists() else []
        errors = [line.strip() for line in lines if _is_error(line)]
        return f"local backend {ended}" + (f": {errors[-1]}" if errors else f" (log: {self.log_path})")

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT_S)
        self.process = None


# The one process this Blender session started (stopped again when the add-on unregisters).
backend = LocalBackend()
