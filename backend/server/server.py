"""The backend's socket loop: one ROUTER, owned by the main thread, answering every request kind.

Only this thread touches the client socket. Pings, status and cancels are answered at once,
even while the worker thread is busy with a long job; the worker's messages arrive through the
:class:`~backend.server.worker.Outbox` and are forwarded here.
"""

from __future__ import annotations

import logging
import signal
from typing import Any, Callable

import zmq

import backend
from backend.generators import GenerateRequest, registry
from protocol import PROTOCOL_VERSION, ErrorCode, Limits, Message, ProtocolError, decode, encode
from protocol.client import LINGER_MS, configure_socket

from .brush_job import BrushRequest
from .curve_job import CurveRequest
from .edit_log_job import EditLogRequest
from .export_job import ExportRequest
from .jobs import Job, JobQueue
from .style_job import StyleFromRequest
from .worker import WAKE_ADDRESS, Outbox, Worker
from .world_job import WorldTilesRequest, check_available

log = logging.getLogger(__name__)
POLL_MS = 100  # how often the loop looks at the stop flag when nothing arrives
JOB_KINDS = ("generate", "export", "brush", "world_tiles", "curve", "style_from", "edit_log")


class Server:
    def __init__(self, address: str = "tcp://127.0.0.1:5555", device: str = "cpu", *,
                 limits: Limits = Limits(), fail_after_steps: int | None = None):
        self.device = device
        self.limits = limits
        self.context = zmq.Context()
        self.router = self.context.socket(zmq.ROUTER)
        configure_socket(self.router, limits)
        self.router.bind(address)
        self.wake = self.context.socket(zmq.PAIR)
        self.wake.setsockopt(zmq.LINGER, 0)
        self.wake.bind(WAKE_ADDRESS)
        self.jobs = JobQueue()
        self.outbox = Outbox(self.context)
        self.worker = Worker(self.jobs, self.outbox, device, fail_after_steps)
        self.stopping = False
        self._handlers: dict[str, Callable[[bytes, Message], None]] = {
            "hello_request": self._hello,
            "submit_request": self._submit,
            "cancel_request": self._cancel,
            "status_request": self._status,
            "ping": self._ping,
            "shutdown_request": self._shutdown,
        }

    # -- loop ------------------------------------------------------------------------------
    def serve(self) -> None:
        """Run until a shutdown request or SIGINT/SIGTERM, then stop cleanly."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_signal)
        self.worker.start()
        poller = zmq.Poller()
        poller.register(self.router, zmq.POLLIN)
        poller.register(self.wake, zmq.POLLIN)
        log.info("serving on %s, device %s", self.router.getsockopt_string(zmq.LAST_ENDPOINT), self.device)
        try:
            while not self.stopping:
                events = dict(poller.poll(POLL_MS))
                if self.wake in events:
                    while self.wake.poll(0):
                        self.wake.recv()
                self._forward_outbox()
                if self.router in events:
                    while not self.stopping and self.router.poll(0):
                        self._receive()
        finally:
            self._close()

    def _on_signal(self, signum: int, frame: Any) -> None:
        log.info("received signal %d, shutting down", signum)
        self.stopping = True

    def _receive(self) -> None:
        frames = self.router.recv_multipart(copy=False)
        identity = frames[0].bytes
        try:
            msg = decode(frames[1:], self.limits)
        except ProtocolError as exc:
            self._send(identity, Message("error", {"code": exc.code.value, "message": str(exc)}))
            return
        handler = self._handlers.get(msg.kind)
        if handler is None:
            self._send(identity, msg.error(ErrorCode.BAD_MESSAGE, f"{msg.kind!r} is not a request the backend accepts"))
            return
        try:
            handler(identity, msg)
        except (TypeError, ValueError) as exc:  # well-formed envelope, ill-typed content
            self._send(identity, msg.error(ErrorCode.BAD_MESSAGE, f"bad {msg.kind}: {exc}"))

    def _send(self, identity: bytes, msg: Message) -> None:
        try:
            self.router.send_multipart([identity, *encode(msg)], copy=False)
        except zmq.ZMQError as exc:  # e.g. the client went away and its queue is full
            log.warning("could not send %s: %s", msg.kind, exc)

    def _forward_outbox(self) -> None:
        for item in self.outbox.drain():
            self._send(item.identity, item.message)
            if item.finished_job is not None:
                self.jobs.finish(item.finished_job)

    # -- handlers --------------------------------------------------------------------------
    def _hello(self, identity: bytes, msg: Message) -> None:
        generators = registry.available()
        self._send(identity, msg.reply("hello_reply", {
            "protocol_version": PROTOCOL_VERSION,
            "backend_version": backend.__version__,
            "device": self.device,
            "generators": generators,
            "styles": sorted({s for styles in generators.values() for s in styles}),
            "jobs": list(JOB_KINDS),
        }))

    def _submit(self, identity: bytes, msg: Message) -> None:
        kind, target, params = msg.content["job"], msg.content["target"], msg.content["params"]
        if self.stopping:
            self._send(identity, msg.error(ErrorCode.SHUTTING_DOWN, "the backend is shutting down"))
            return
        if kind not in JOB_KINDS:
            self._send(identity, msg.error(ErrorCode.BAD_PARAMS, f"unknown job {kind!r}; available: {list(JOB_KINDS)}"))
            return
        if not isinstance(target, str):
            self._send(identity, msg.error(ErrorCode.BAD_PARAMS, f"target must be a string, got {target!r}"))
            return
        request: (GenerateRequest | ExportRequest | BrushRequest | WorldTilesRequest | CurveRequest | StyleFromRequest
                  | EditLogRequest)
        try:
            if kind == "export":
                request = ExportRequest.from_params(params, msg.arrays)
            elif kind == "world_tiles":
                request = WorldTilesRequest.from_params(params)
                check_available(request)
            elif kind == "brush":
                if "diffusion" not in registry.available():
                    raise ValueError("brushes need the learned models (terrain_base and terrain_superres weights)")
                request = BrushRequest.from_params(params, msg.arrays, registry.get("diffusion").styles)
            elif kind == "curve":
                if "diffusion" not in registry.available() or "profile" not in registry.get("diffusion").extras:
                    raise ValueError("curve guides need the learned models and the profile model "
                                     "(terrain_base, terrain_superres and profile_1d weights)")
                request = CurveRequest.from_params(params, msg.arrays, registry.get("diffusion").styles)
            elif kind == "style_from":
                request = StyleFromRequest.from_params(params, msg.arrays)
            elif kind == "edit_log":
                request = EditLogRequest.from_params(params)
            else:
                request = GenerateRequest.from_params(params, registry.default_name())
                registry.check_request(request)
        except ValueError as exc:
            self._send(identity, msg.error(ErrorCode.BAD_PARAMS, str(exc)))
            return
        job = Job(identity, msg.id, kind, target, request)
        superseded = self.jobs.submit(job)
        self._send(identity, msg.reply("submit_reply", {"job_id": job.id, "superseded": [j.id for j in superseded]}))
        for old in superseded:
            self._send_job_error(old, ErrorCode.SUPERSEDED, f"superseded by job {job.id} for target {target!r}")

    def _send_job_error(self, job: Job, code: ErrorCode, text: str) -> None:
        error = Message("error", {"code": code.value, "message": text, "job_id": job.id}, parent=job.request_id)
        self._send(job.identity, error)

    def _cancel(self, identity: bytes, msg: Message) -> None:
        job_id = msg.content["job_id"]
        if not isinstance(job_id, str):
            raise ValueError(f"job_id must be a string, got {job_id!r}")
        job, running = self.jobs.cancel(job_id)
        if job is None:
            self._send(identity, msg.error(ErrorCode.UNKNOWN_JOB, f"no queued or running job {job_id!r}"))
            return
        self._send(identity, msg.reply("cancel_reply", {"job_id": job_id, "cancelled": True, "running": running}))
        if not running:  # a running job answers for itself when its sampler reaches the next step
            self._send_job_error(job, ErrorCode.CANCELLED, "job cancelled before it started")

    def _status(self, identity: bytes, msg: Message) -> None:
        running, queued = self.jobs.snapshot()
        self._send(identity, msg.reply("status_reply", {"running": running, "queued": queued, "device": self.device}))

    def _ping(self, identity: bytes, msg: Message) -> None:
        self._send(identity, msg.reply("pong", {"jobs": self.jobs.held_ids(), "ping_sent": msg.content.get("sent", 0.0)}))

    def _shutdown(self, identity: bytes, msg: Message) -> None:
        self._send(identity, msg.reply("shutdown_reply"))
        self.stopping = True

    # -- shutdown --------------------------------------------------------------------------
    def _close(self) -> None:
        """Drop queued jobs, stop the running one, send what is left, close with a finite linger."""
        for job in self.jobs.close():
            self._send_job_error(job, ErrorCode.SHUTTING_DOWN, "the backend shut down before this job ran")
        self.worker.stopping.set()
        self.worker.join(timeout=30)
        self._forward_outbox()
        self.wake.close()
        self.router.close(linger=LINGER_MS)  # finite: queued replies get out, closing never hangs
        if self.worker.is_alive():  # its wake-up socket is still open: term() would wait for it
            log.warning("worker still busy after 30 s; exiting without it")
            return
        self.context.term()
        log.info("stopped")
