"""The headless pipeline behind ``python -m backend generate``: the same path the add-on takes.

It starts a real backend process on a free loopback port, talks to it with the protocol client,
then writes the assets: exporters from ``backend.export`` and a preview rendered by Blender in
a subprocess (``backend.render.preview``).
"""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any, Sequence

import numpy as np

from backend.terrain import Heightfield
from protocol import Message
from protocol.client import BackendError, Client

EXPORT_FORMATS = ["glb", "png16"]  # mesh, 16-bit heightmap PNG + JSON sidecar
RENDER_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalBackend:
    """``python -m backend serve`` on a loopback port (a free one unless given), stopped with SIGTERM (it exits
    cleanly). ``log``: a file for its output (default: this process's); ``log_level``: the backend's."""

    def __init__(self, device: str = "auto", startup_timeout: float = 60.0, extra_args: Sequence[str] = (),
                 env: dict[str, str] | None = None, port: int | None = None, log: IO[bytes] | None = None,
                 log_level: str = "INFO"):
        self.address = f"tcp://127.0.0.1:{port or free_port()}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "backend", "--log-level", log_level, "serve", "--address", self.address,
             "--device", device, *extra_args], env=env, stdout=log, stderr=None if log is None else subprocess.STDOUT)
        self.client = Client(self.address)
        deadline = time.monotonic() + startup_timeout
        while True:
            if self.process.poll() is not None:
                self.client.close()
                raise RuntimeError(f"backend exited with code {self.process.returncode} during startup")
            try:
                self.hello = self.client.request(Message("hello_request", {"client": "cli"}), timeout=1.0)
                return
            except BackendError:
                if time.monotonic() > deadline:
                    self.close()
                    raise

    def close(self) -> int:
        """Stop the backend (SIGTERM, then SIGKILL after 30 s); its exit code."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        self.client.close()
        return self.process.returncode


def _print_progress(msg: Message) -> None:
    if msg.kind == "progress" and msg.content["total"]:
        print(f"  step {msg.content['step']}/{msg.content['total']} {msg.content['stage']}", flush=True)
    elif msg.kind == "preview":
        heights = msg.arrays["heights"]
        print(f"  preview {heights.shape[0]}x{heights.shape[1]}: {heights.min():.0f} .. {heights.max():.0f} m",
              flush=True)


def request_heightfield(params: dict[str, Any], device: str = "auto", timeout: float = 600.0) -> Heightfield:
    backend = LocalBackend(device)
    try:
        job_id = backend.client.submit("generate", params, target="cli")
        result = backend.client.wait_result(job_id, timeout, on_message=_print_progress)
    finally:
        backend.close()
    meta = result.content["meta"]
    print(f"generator: {meta['generator']}", flush=True)  # never a silent fallback to the procedural one
    return Heightfield(result.arrays["heights"].copy(), meta["cell_size"], style=str(params.get("style", "")))


def render_preview(hf: Heightfield, out: Path) -> Path:
    """Blender render in a subprocess of the same Python (bpy stays out of this process)."""
    with tempfile.TemporaryDirectory() as tmp:
        heights_file = Path(tmp) / "heights.npy"
        np.save(heights_file, hf.heights, allow_pickle=False)
        subprocess.run([sys.executable, "-m", "backend.render.preview", "--heights", str(heights_file),
                        "--cell-size", str(hf.cell_size), "--out", str(out)],
                       check=True, timeout=RENDER_TIMEOUT_S, stdout=subprocess.DEVNULL)
    return out


def generate_world(params: dict[str, Any], out_dir: Path, device: str = "auto", render: bool = True,
                   timeout: float = 600.0, formats: list[str] | tuple[str, ...] = tuple(EXPORT_FORMATS),
                   preset: str | None = None) -> list[Path]:
    from backend.export import export_terrain  # written alongside; imported late so serve never needs it

    if render and importlib.util.find_spec("bpy") is None:  # say so before generating, not after
        raise RuntimeError("rendering the preview needs Blender's bpy: `pip install worldsculpt[render]`, "
                           "or pass --no-render")
    hf = request_heightfield(params, device, timeout)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = list(export_terrain(hf, out_dir, formats=formats, preset=preset))
    if render:
        paths.append(render_preview(hf, out_dir / "preview.png"))
    return paths
