"""Shared fixtures: a real backend process on a real loopback socket."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from protocol import Message
from protocol.client import BackendError, Client, CurveKeys

ROOT = Path(__file__).resolve().parents[1]


def addon_module(name: str) -> ModuleType:
    """A bpy-free module of blender_addon/ (grid, explore_plan), loaded without the add-on package
    (whose __init__ imports bpy)."""
    spec = importlib.util.spec_from_file_location(f"wsc_{name}", ROOT / "blender_addon" / f"{name}.py")
    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)  # dataclasses look it up
    spec.loader.exec_module(module)
    return module


def terrain_models_only(folder: Path, source: Path) -> Path:
    """A models folder holding only ``source``'s two terrain models (links): a backend without the others."""
    folder.mkdir()
    for name in ("terrain_base.safetensors", "terrain_superres.safetensors"):
        (folder / name).symlink_to(source / name)
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Request paths must lie in the backend's roots: the tests' files all live under pytest's base temp folder.
TEST_ROOT = Path(tempfile.gettempdir())
SERVE = ("-m", "backend", "serve")
SERVE_WITH_FAILING = (str(ROOT / "tests" / "failing_backend.py"), "serve")  # + a generator that fails


class BackendProcess:
    """`python -m backend serve` in a subprocess, with its address and a way to stop it."""

    def __init__(self, *extra_args: str, startup_timeout: float = 120.0, command: tuple[str, ...] = SERVE,
                 host: str = "127.0.0.1", port: int | None = None, keys: CurveKeys | None = None):
        self.address = f"tcp://{host}:{port or free_port()}"
        self.keys = keys
        env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
        self.log = open(ROOT / "tests" / f".backend-{self.address.rsplit(':', 1)[1]}.log", "w+b")
        self.process = subprocess.Popen(
            [sys.executable, *command, "--address", self.address, "--root", str(TEST_ROOT), *extra_args],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        self._wait_ready(startup_timeout)

    def _wait_ready(self, timeout: float) -> None:
        client = Client(self.address, keys=self.keys)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"backend exited with {self.process.returncode}:\n{self.output()}")
                try:
                    self.hello = client.request(Message("hello_request", {"client": "tests"}), timeout=2.0)
                    return
                except BackendError:
                    continue
            raise RuntimeError(f"backend did not answer hello in {timeout} s:\n{self.output()}")
        finally:
            client.close()

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.log.close()
        Path(self.log.name).unlink(missing_ok=True)


@pytest.fixture(scope="session")
def backend():
    """One shared backend for tests that do not kill it."""
    proc = BackendProcess()
    yield proc
    proc.stop()


@pytest.fixture
def private_backend():
    """A backend of the test's own, for tests that kill or shut it down."""
    procs: list[BackendProcess] = []

    def start(*extra_args: str, **options: Any) -> BackendProcess:
        procs.append(BackendProcess(*extra_args, **options))
        return procs[-1]

    yield start
    for proc in procs:
        proc.stop()


def _tiny_run(kind: str, corpus: Path, out: Path) -> Path:
    """A tiny config of the real training script: ~10 s per model, enough to exercise the pipeline."""
    config = {"kind": kind, "corpus": [str(corpus)], "factor": 4, "crop": 32, "threads": 1,
              "unet": {"model_channels": 16, "channel_mult": [1, 2], "num_res_blocks": 1,
                       "attn_levels": [1] if kind == "base" else [], "head_channels": 16,
                       "mid_attn": kind != "superres"},
              "train": {"steps": 30, "batch_size": 8, "out_dir": str(out / f"{kind}_run"), "progress": False,
                        "ckpt_every": 0},
              "ship_to": str(out / "models" / f"terrain_{kind}.safetensors")}
    if kind == "profile":  # the curve guides' 1D model, on short profiles of the small maps
        config.update(profile={"length": 32, "min_cells": 12}, cond_dropout={},
                      ship_to=str(out / "models" / "profile_1d.safetensors"))
    path = out / f"{kind}.json"
    path.write_text(json.dumps(config))
    return path


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> Path:
    """Base, super-resolution and profile models trained for a few steps by the real corpus and training
    scripts, so tests of the learned path never depend on the shipped weights."""
    out = tmp_path_factory.mktemp("tiny_models")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    corpus = out / "corpus"
    subprocess.run([sys.executable, "-m", "backend.data.corpus", "--out", str(corpus), "--seed", "1",
                    "--maps-per-style", "2", "--map-size", "128", "--styles", "alpine,desert_dunes"],
                   cwd=ROOT, env=env, check=True, capture_output=True, timeout=300)
    for kind in ("base", "superres", "profile"):
        subprocess.run([sys.executable, "-m", "backend.training.train_terrain", str(_tiny_run(kind, corpus, out))],
                       cwd=ROOT, env=env, check=True, capture_output=True, timeout=300)
    return out / "models"


@pytest.fixture(scope="session")
def memory_model(tiny_models, tmp_path_factory) -> Path:
    """The memory-conditioned base model trained for a few steps by the real corpus and train_memory scripts:
    large maps of 4 x 4 tiny tiles (128² at the tiny base's 120 m cells), started from the tiny base model."""
    out = tmp_path_factory.mktemp("memory_model")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    corpus = out / "walks"
    subprocess.run([sys.executable, "-m", "backend.data.corpus", "--out", str(corpus), "--seed", "2",
                    "--maps-per-style", "2", "--map-size", "128", "--cell-size", "120", "--tile", "64",
                    "--heldout-fraction", "0", "--styles", "alpine,desert_dunes"],
                   cwd=ROOT, env=env, check=True, capture_output=True, timeout=300)
    config = {"corpus": [str(corpus)], "init_from": str(tiny_models / "terrain_base.safetensors"), "threads": 1,
              "memory": {"dim": 32, "encoder_channels": 16, "world_slots": 8, "region_slots": 8, "update_slots": 2,
                        "max_regions": 4},
              "max_context": 4, "level_std": 0.17, "walks_per_map": 8,
              "train": {"steps": 20, "batch_size": 8, "out_dir": str(out / "run"), "progress": False,
                        "ckpt_every": 0, "log_every": 5},
              "ship_to": str(out / "terrain_memory.safetensors")}
    (out / "memory.json").write_text(json.dumps(config))
    subprocess.run([sys.executable, "-m", "backend.training.train_memory", str(out / "memory.json")],
                   cwd=ROOT, env=env, check=True, capture_output=True, timeout=300)
    return out / "terrain_memory.safetensors"


@pytest.fixture(scope="session")
def learned_backend(tiny_models):
    """A backend serving the tiny learned models (brushes and curve guides need them)."""
    proc = BackendProcess("--models-dir", str(tiny_models))
    yield proc
    proc.stop()


@pytest.fixture
def client(backend):
    c = Client(backend.address)
    yield c
    c.close()
