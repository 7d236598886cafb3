"""The one thread that owns the device and runs jobs; it never touches the client socket.

Everything it has to say goes into an :class:`Outbox` (a queue plus an inproc wake-up for the
socket thread), tagged with the client identity and, for a job's last message, the job id, so
the socket thread marks the job finished only once that message is really sent.
"""

from __future__ import annotations

import logging
import queue
import threading
import traceback
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import zmq

from backend.generators import Cancelled, Generator, registry
from backend.metrics.reference import load_classifier
from backend.metrics.style_classifier import StyleClassifier
from protocol import ErrorCode, Message

from .job_kinds import JOB_KINDS
from .jobs import Job, JobQueue
from .world_job import OpenWorlds

log = logging.getLogger(__name__)
WAKE_ADDRESS = "inproc://worldsculpt-worker-wake"


def resolve_device(name: str) -> str:
    """'auto' -> 'cuda' when torch sees a GPU, else 'cpu'; asking for a missing GPU is an error."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but torch sees no CUDA device")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {name!r}")
    return name


@dataclass
class Outgoing:
    identity: bytes
    message: Message
    finished_job: str | None = None  # set on a job's last message


class Outbox:
    """Worker -> socket thread. ``put`` is called from the worker only (it owns the PAIR end)."""

    def __init__(self, context: zmq.Context):
        self._context = context
        self._queue: queue.Queue[Outgoing] = queue.Queue()
        self._wake: zmq.Socket | None = None

    def put(self, item: Outgoing) -> None:
        self._queue.put(item)
        if self._wake is None:  # created lazily on the worker thread, which then owns it
            self._wake = self._context.socket(zmq.PAIR)
            self._wake.setsockopt(zmq.LINGER, 0)
            self._wake.connect(WAKE_ADDRESS)
        try:
            self._wake.send(b"", zmq.NOBLOCK)
        except zmq.Again:  # the socket thread already has wake-ups pending; it will drain the queue
            pass

    def drain(self) -> list[Outgoing]:
        items = []
        while True:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                return items

    def close(self) -> None:
        if self._wake is not None:
            self._wake.close()


class Worker(threading.Thread):
    def __init__(self, jobs: JobQueue, outbox: Outbox, device: str):
        super().__init__(name="worldsculpt-worker", daemon=True)
        self.jobs = jobs
        self.outbox = outbox
        self.device = device
        self.stopping = threading.Event()
        self.worlds = OpenWorlds()
        self._generators: dict[str, Generator] = {}
        self._classifier: StyleClassifier | None = None  # loaded by the first style_from job

    def run(self) -> None:
        self._warm_up()
        while not self.stopping.is_set():
            job = self.jobs.next(timeout=0.2)
            if job is not None:
                self._run(job)
        self.outbox.close()

    def send(self, job: Job, kind: str, content: dict[str, Any], arrays: dict[str, np.ndarray] | None = None,
             final: bool = False) -> None:
        message = Message(kind, {"job_id": job.id, **content}, arrays or {}, parent=job.request_id)
        self.outbox.put(Outgoing(job.identity, message, job.id if final else None))

    def _run(self, job: Job) -> None:
        """Run the job's kind; whatever it raises becomes the job's error and the worker goes on."""
        try:
            meta, arrays = JOB_KINDS[job.kind].run(self, job)
        except Cancelled as exc:
            code = ErrorCode.SHUTTING_DOWN if self.stopping.is_set() else ErrorCode.CANCELLED
            self.send(job, "error", {"code": code.value, "message": f"job cancelled: {exc}"}, final=True)
        except Exception as exc:  # a failing job (damaged file, full disk, bad weights) must not stop the server
            log.error("%s job %s failed:\n%s", job.kind, job.id, traceback.format_exc())
            self.send(job, "error", {"code": ErrorCode.JOB_FAILED.value,
                                     "message": f"{job.kind} failed: {type(exc).__name__}: {exc}"}, final=True)
        else:
            self.send(job, "result", {"meta": meta}, arrays, final=True)

    def classifier(self) -> StyleClassifier:
        if self._classifier is None:
            self._classifier = load_classifier()
        return self._classifier

    def _warm_up(self) -> None:
        """Load the default generator (weights, first kernels) before the first job asks for it."""
        try:
            self.generator(registry.default_name())
        except Exception:  # a broken weight file must not stop the server: jobs will report it
            log.error("could not load the default generator:\n%s", traceback.format_exc())

    def generator(self, name: str) -> Generator:
        """One instance per generator, created on this thread (it may load weights onto the device)."""
        if name not in self._generators:
            self._generators[name] = registry.get(name).factory(self.device)
        return self._generators[name]
