"""Shared fixtures: a real backend process on a real loopback socket."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from protocol import Message
from protocol.client import BackendError, Client

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class BackendProcess:
    """`python -m backend serve` in a subprocess, with its address and a way to stop it."""

    def __init__(self, *extra_args: str, startup_timeout: float = 120.0):
        self.address = f"tcp://127.0.0.1:{free_port()}"
        env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
        self.log = open(ROOT / "tests" / f".backend-{self.address.rsplit(':', 1)[1]}.log", "w+b")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "backend", "serve", "--address", self.address, *extra_args],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        self._wait_ready(startup_timeout)

    def _wait_ready(self, timeout: float) -> None:
        client = Client(self.address)
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

    def start(*extra_args: str) -> BackendProcess:
        procs.append(BackendProcess(*extra_args))
        return procs[-1]

    yield start
    for proc in procs:
        proc.stop()


@pytest.fixture
def client(backend):
    c = Client(backend.address)
    yield c
    c.close()
