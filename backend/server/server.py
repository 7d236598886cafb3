"""The backend's socket loop: one ROUTER, owned by the main thread, answering every request kind.

Only this thread touches the client socket. Pings, status and cancels are answered at once,
even while the worker thread is busy with a long job; the worker's messages arrive through the
:class:`~backend.server.worker.Outbox` and are forwarded here. Nothing a message holds can stop the
loop: every request is decoded and checked (``protocol.decode``, then its job kind's ``parse``) before
anything runs, and whatever handling one raises is answered as an error to its sender.
"""

from __future__ import annotations

import logging
import signal
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import zmq

import backend
from backend.generators import registry
from protocol import PROTOCOL_VERSION, ErrorCode, Limits, Message, ProtocolError, decode, encode
from protocol.client import LINGER_MS, configure_socket

from .auth import CurveGuard, is_loopback
from .job_kinds import JOB_KINDS
from .jobs import MAX_QUEUED, Job, JobQueue, QueueFull
from .menus import brush_shape_share, menus
from .paths import OutsideRoots, Roots, default_roots
from .worker import WAKE_ADDRESS, Outbox, Worker

log = logging.getLogger(__name__)
POLL_MS = 100  # how often the loop looks at the stop flag when nothing arrives
SEND_HWM = 256  # messages queued per client that does not read; ZeroMQ drops beyond (pongs then report it)


@dataclass(frozen=True)
class ServerConfig:
    address: str = "tcp://127.0.0.1:5555"
    device: str = "cpu"
    roots: tuple[Path, ...] = ()  # folders request paths must lie in; none given: the user's home
    keys: Path | None = None  # CURVE key folder (backend.server.auth); needed for any non-loopback bind
    limits: Limits = Limits()
    max_queued: int = MAX_QUEUED


def _describe(exc: BaseException) -> str:
    """An exception's text for an error reply: short, and never itself a new failure."""
    try:
        return f"{type(exc).__name__}: {str(exc)[:1000]}"
    except Exception:  # a message that cannot be formatted (deep nesting, a broken __str__)
        return type(exc).__name__


class Server:
    def __init__(self, config: ServerConfig = ServerConfig()):
        if config.keys is None and not is_loopback(config.address):
            raise ValueError(f"{config.address} is not a loopback address: serving other machines needs CURVE "
                             "keys (--keys FOLDER), so that only clients holding the key get in")
        self.device = config.device
        self.limits = config.limits
        self.roots = Roots(config.roots or default_roots())
        self.context = zmq.Context()
        self.guard = CurveGuard(self.context, config.keys) if config.keys is not None else None
        self.router = self.context.socket(zmq.ROUTER)
        configure_socket(self.router, self.limits)
        self.router.setsockopt(zmq.SNDHWM, SEND_HWM)
        if self.guard is not None:
            self.guard.secure(self.router)
        self.router.bind(config.address)
        self.wake = self.context.socket(zmq.PAIR)
        self.wake.setsockopt(zmq.LINGER, 0)
        self.wake.bind(WAKE_ADDRESS)
        self.jobs = JobQueue(config.max_queued)
        self.outbox = Outbox(self.context)
        self.worker = Worker(self.jobs, self.outbox, self.device)
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
        log.info("serving on %s (%s), device %s, paths inside %s", self.router.getsockopt_string(zmq.LAST_ENDPOINT),
                 "CURVE clients only" if self.guard else "loopback", self.device, [str(r) for r in self.roots.folders])
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
        except Exception as exc:  # a decoder bug must not stop the loop either: log it, answer, go on
            log.error("decoding a message failed:\n%s", traceback.format_exc(limit=8))
            self._send(identity, Message("error", {"code": ErrorCode.BAD_MESSAGE.value,
                                                   "message": f"unreadable message: {_describe(exc)}"}))
            return
        finally:
            del frames  # a refused message's frames are released at once, not held until the next one
        handler = self._handlers.get(msg.kind)
        if handler is None:
            self._send(identity, msg.error(ErrorCode.BAD_MESSAGE, f"{msg.kind!r} is not a request the backend accepts"))
            return
        try:
            handler(identity, msg)
        except Exception as exc:  # nothing a request holds may stop the loop: answer it and keep serving
            log.error("handling %s failed:\n%s", msg.kind, traceback.format_exc(limit=8))
            self._send(identity, msg.error(ErrorCode.BAD_MESSAGE, f"bad {msg.kind}: {_describe(exc)}"))

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
            "menus": menus(),
            "brush_shape_share": brush_shape_share(),
        }))

    def _submit(self, identity: bytes, msg: Message) -> None:
        """Check the job against its kind's schema, then queue it (or say why not)."""
        name, target, params = msg.content["job"], msg.content["target"], msg.content["params"]
        if self.stopping:
            self._send(identity, msg.error(ErrorCode.SHUTTING_DOWN, "the backend is shutting down"))
            return
        kind = JOB_KINDS.get(name)
        if kind is None:
            self._send(identity, msg.error(ErrorCode.BAD_PARAMS, f"unknown job {name!r}; available: {list(JOB_KINDS)}"))
            return
        try:
            job = Job(identity, msg.id, name, target, kind.parse(params, msg.arrays, self.roots))
            superseded = self.jobs.submit(job)
        except OutsideRoots as exc:
            self._send(identity, msg.error(ErrorCode.FORBIDDEN, str(exc)))
            return
        except QueueFull as exc:
            self._send(identity, msg.error(ErrorCode.BUSY, str(exc)))
            return
        except (ValueError, OSError) as exc:  # OSError: a path the file system refuses to look at
            self._send(identity, msg.error(ErrorCode.BAD_PARAMS, str(exc) if isinstance(exc, ValueError)
                                           else f"unusable path: {_describe(exc)}"))
            return
        self._send(identity, msg.reply("submit_reply", {"job_id": job.id, "superseded": [j.id for j in superseded]}))
        for old in superseded:
            self._send_job_error(old, ErrorCode.SUPERSEDED, f"superseded by job {job.id} for target {target!r}")

    def _send_job_error(self, job: Job, code: ErrorCode, text: str) -> None:
        error = Message("error", {"code": code.value, "message": text, "job_id": job.id}, parent=job.request_id)
        self._send(job.identity, error)

    def _cancel(self, identity: bytes, msg: Message) -> None:
        job_id = msg.content["job_id"]
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
        """Only a CURVE-authenticated client may stop the backend; on loopback its owner sends SIGTERM."""
        if self.guard is None:
            self._send(identity, msg.error(ErrorCode.FORBIDDEN, "shutdown needs an authenticated client (a backend "
                                           "started with --keys); stop this one with SIGTERM or Ctrl-C"))
            return
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
        if self.guard is not None:
            self.guard.stop()
        if self.worker.is_alive():  # its wake-up socket is still open: term() would wait for it
            log.warning("worker still busy after 30 s; exiting without it")
            return
        self.context.term()
        log.info("stopped")
