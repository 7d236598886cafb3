"""A client that never waits forever: the add-on's and the tests' side of the socket.

It owns one DEALER socket. Calls either return at once (``poll``) or within the timeout they
are given. Liveness comes from heartbeats: every ``ping`` is answered by a ``pong`` listing the
jobs the server still holds, so the client notices both a dead backend (no pong in time) and a
result that was silently dropped on the way (the job left the server but its result never came:
ZeroMQ drops a message over MAXMSGSIZE, or one in flight when a socket closes with linger 0).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zmq
import zmq.auth

from .codec import Limits, ProtocolError, decode, encode
from .messages import ErrorCode, Message

LINGER_MS = 2000  # finite: closing never hangs, but a large reply still gets out


class BackendError(RuntimeError):
    """The backend answered with an error message, or could not be reached."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class CurveKeys:
    """A client's CURVE key pair and the backend's public key (Z85), for a backend started with ``--keys``."""

    public: bytes
    secret: bytes
    server: bytes

    @classmethod
    def load(cls, folder: str | Path) -> "CurveKeys":
        """From a key folder as the backend creates it: ``client.key_secret`` and ``server.key``."""
        folder = Path(folder)
        public, secret = zmq.auth.load_certificate(folder / "client.key_secret")
        server, _ = zmq.auth.load_certificate(folder / "server.key")
        if secret is None:
            raise ValueError(f"{folder / 'client.key_secret'} holds no secret key")
        return cls(public, secret, server)


def configure_socket(socket: zmq.Socket, limits: Limits) -> None:
    """Socket options both sides share: finite linger and a receive size cap."""
    socket.setsockopt(zmq.LINGER, LINGER_MS)
    socket.setsockopt(zmq.MAXMSGSIZE, limits.max_frame_bytes + limits.max_header_bytes)


class Client:
    def __init__(self, address: str, *, limits: Limits = Limits(), heartbeat_interval: float = 0.5,
                 heartbeat_timeout: float = 5.0, context: zmq.Context | None = None, keys: CurveKeys | None = None):
        self.address = address
        self.limits = limits
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_timeout = heartbeat_timeout
        self._context = context or zmq.Context.instance()
        self._socket = self._context.socket(zmq.DEALER)
        configure_socket(self._socket, limits)
        if keys is not None:  # without the backend's key the handshake fails and nothing is ever answered
            self._socket.curve_publickey, self._socket.curve_secretkey = keys.public, keys.secret
            self._socket.curve_serverkey = keys.server
        self._socket.connect(address)
        self._inbox: deque[Message] = deque()
        self._jobs_awaiting: dict[str, float] = {}  # job id -> time submitted
        self._submitted: dict[str, str | None] = {}  # submit_nowait's message id -> job id (None until the reply)
        self._cancel_on_reply: set[str] = set()  # submits cancelled before their job id arrived
        self._last_ping = 0.0
        self._ping_sent_at: float | None = None
        self.last_heard: float | None = None

    # -- sending ---------------------------------------------------------------------------
    def send(self, msg: Message) -> str:
        """Never blocks: a DEALER with no live connection would wait in send() forever."""
        try:
            self._socket.send_multipart(encode(msg), zmq.NOBLOCK, copy=False)
        except zmq.Again:
            raise BackendError(ErrorCode.DISCONNECTED.value, f"no connection to {self.address}") from None
        return msg.id

    def submit(self, job: str, params: dict[str, Any], target: str = "", timeout: float = 10.0,
               arrays: dict[str, np.ndarray] | None = None) -> str:
        """Queue a job on the backend (``arrays``: its input grids, e.g. export's "heights"); returns its job id."""
        reply = self.request(Message("submit_request", {"job": job, "target": target, "params": params},
                                     arrays or {}), timeout)
        job_id = reply.content["job_id"]
        self._jobs_awaiting[job_id] = time.monotonic()
        return job_id

    def submit_nowait(self, job: str, params: dict[str, Any], target: str = "",
                      arrays: dict[str, np.ndarray] | None = None) -> str:
        """Queue a job without waiting for the answer (a UI must not wait); returns the submit's message id,
        which every message about the job carries as ``parent``: its ``submit_reply``, progress, previews,
        result, and a refusal (``error`` ``bad_params``) too."""
        request_id = self.send(Message("submit_request", {"job": job, "target": target, "params": params},
                                       arrays or {}))
        self._submitted[request_id] = None
        return request_id

    def cancel_submitted(self, request_id: str) -> None:
        """Cancel a job queued with ``submit_nowait``, also before its job id has arrived."""
        job_id = self._submitted.get(request_id)
        if job_id is not None:
            self.cancel(job_id)
        elif request_id in self._submitted:
            self._cancel_on_reply.add(request_id)

    def _on_submit_reply(self, reply: Message) -> None:
        job_id = reply.content["job_id"]
        self._submitted[reply.parent] = job_id
        self._jobs_awaiting[job_id] = time.monotonic()
        if reply.parent in self._cancel_on_reply:
            self._cancel_on_reply.discard(reply.parent)
            self.cancel(job_id)

    def cancel(self, job_id: str) -> None:
        self.send(Message("cancel_request", {"job_id": job_id}))

    # -- receiving -------------------------------------------------------------------------
    def _receive_one(self, timeout: float) -> Message | None:
        if not self._socket.poll(max(0, int(timeout * 1000)), zmq.POLLIN):
            return None
        try:  # POLLIN is no promise: a message over MAXMSGSIZE is dropped after waking the poll
            frames = self._socket.recv_multipart(zmq.NOBLOCK, copy=False)
        except zmq.Again:
            return None
        try:
            msg = decode(frames, self.limits)
        except ProtocolError as exc:
            return Message("error", {"code": exc.code.value, "message": f"unreadable message from backend: {exc}"})
        self.last_heard = time.monotonic()
        if msg.kind == "pong":
            self._ping_sent_at = None
            return self._check_lost_jobs(msg)
        if msg.kind == "submit_reply" and msg.parent in self._submitted:
            self._on_submit_reply(msg)
        if msg.kind in ("result", "error"):
            self._jobs_awaiting.pop(msg.content.get("job_id", msg.parent), None)
            self._submitted.pop(msg.parent, None)
            self._cancel_on_reply.discard(msg.parent)
        return msg

    def _check_lost_jobs(self, pong: Message) -> Message | None:
        """A job the server no longer holds whose result never arrived was lost on the way."""
        active = set(pong.content.get("jobs", []))
        sent_at = pong.content.get("ping_sent", 0.0)
        for job_id, submitted in list(self._jobs_awaiting.items()):
            if job_id not in active and submitted < sent_at:
                del self._jobs_awaiting[job_id]
                request_id = next((r for r, j in self._submitted.items() if j == job_id), None)
                self._submitted.pop(request_id, None)
                return Message("error", {"code": ErrorCode.DISCONNECTED.value, "job_id": job_id,
                                         "message": "the backend finished this job but its result never arrived "
                                                    "(too large for the link, or the backend went away)"},
                               parent=request_id)
        return None

    def poll(self, timeout: float = 0.0) -> list[Message]:
        """Everything that has arrived (waiting at most ``timeout`` for the first), plus heartbeats."""
        self.heartbeat()
        out = list(self._inbox)
        self._inbox.clear()
        deadline = time.monotonic() + timeout
        while True:
            msg = self._receive_one(max(0.0, deadline - time.monotonic()) if not out else 0.0)
            if msg is None:
                if out or time.monotonic() >= deadline:
                    break
                continue
            out.append(msg)
        lost = self.connection_error()
        if lost is not None:
            out.append(lost)
        return out

    def request(self, msg: Message, timeout: float = 10.0) -> Message:
        """Send and wait for the direct answer; other messages meanwhile are kept for ``poll``."""
        self.send(msg)
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            reply = self._receive_one(remaining)
            if reply is None:
                continue
            if reply.parent == msg.id:
                if reply.kind == "error":
                    raise BackendError(reply.content["code"], reply.content["message"])
                return reply
            self._inbox.append(reply)
        raise BackendError(ErrorCode.TIMEOUT.value, f"no answer to {msg.kind} from {self.address} in {timeout:.1f} s")

    def wait_result(self, job_id: str, timeout: float, on_message=None) -> Message:
        """Block (up to ``timeout``) until the job's result; previews/progress go to ``on_message``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for msg in self.poll(min(0.1, max(0.0, deadline - time.monotonic()))):
                mine = msg.content.get("job_id") == job_id or msg.parent == job_id
                link_lost = msg.content.get("code") == ErrorCode.DISCONNECTED.value and "job_id" not in msg.content
                if msg.kind == "error" and (mine or link_lost):  # another job's lost-result notice is not ours
                    raise BackendError(msg.content["code"], msg.content["message"])
                if msg.kind == "result" and mine:
                    return msg
                if on_message is not None:
                    on_message(msg)
        raise BackendError(ErrorCode.TIMEOUT.value, f"job {job_id} gave no result in {timeout:.1f} s")

    # -- liveness --------------------------------------------------------------------------
    def heartbeat(self) -> None:
        now = time.monotonic()
        if now - self._last_ping >= self.heartbeat_interval:
            self._last_ping = now
            if self._ping_sent_at is None:
                self._ping_sent_at = now
            try:
                self.send(Message("ping", {"sent": now}))
            except BackendError:  # not connected: the unanswered ping runs into heartbeat_timeout
                pass

    @property
    def connected(self) -> bool:
        return self.last_heard is not None and self.connection_error() is None

    def connection_error(self) -> Message | None:
        """An error message if heartbeats have gone unanswered for longer than the timeout."""
        if self._ping_sent_at is not None and time.monotonic() - self._ping_sent_at > self.heartbeat_timeout:
            return Message("error", {"code": ErrorCode.DISCONNECTED.value,
                                     "message": f"backend at {self.address} stopped answering heartbeats "
                                                f"for {self.heartbeat_timeout:.0f} s"})
        return None

    def close(self) -> None:
        self._socket.close(linger=LINGER_MS)
