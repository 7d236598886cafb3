"""Message kinds and the envelope every message shares.

A message is a msgpack *header* frame followed by one raw frame per numpy array:

    header = {"v": PROTOCOL_VERSION, "id": str, "kind": str, "parent": str | None,
              "content": {...}, "arrays": [{"name": str, "dtype": str, "shape": [int, ...]}]}

``parent`` ties replies, progress, previews and results to the request that caused them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np

PROTOCOL_VERSION = 1

MAX_ID_LEN = 64  # message and job ids: new_id() makes 32 hex digits
MAX_TARGET_LEN = 1024  # a Blender object name, or "" (targets decide which queued jobs a newer one supersedes)

# kind -> content keys that must be present (extra keys are allowed for forward compatibility).
KINDS: dict[str, tuple[str, ...]] = {
    # client -> server
    "hello_request": ("client",),
    "submit_request": ("job", "target", "params"),
    "cancel_request": ("job_id",),
    "status_request": (),
    "ping": (),
    "shutdown_request": (),
    # server -> client
    "hello_reply": ("protocol_version", "backend_version", "device", "generators", "styles"),
    "submit_reply": ("job_id", "superseded"),
    "cancel_reply": ("job_id", "cancelled"),
    "status_reply": ("running", "queued", "device"),
    "progress": ("job_id", "step", "total", "stage"),
    "preview": ("job_id", "step", "meta"),
    "result": ("job_id", "meta"),
    "error": ("code", "message"),
    "pong": (),
    "shutdown_reply": (),
}

# The requests' content schema, checked by the decoder: key -> the types its value may have. Optional keys
# (``ping``'s ``sent``) are checked when present. A job's own ``params`` are checked by the backend's job registry.
NUMBER = (int, float)
REQUEST_FIELDS: dict[str, dict[str, tuple[type, ...]]] = {
    "hello_request": {"client": (str,)},
    "submit_request": {"job": (str,), "target": (str,), "params": (dict,)},
    "cancel_request": {"job_id": (str,)},
    "ping": {"sent": NUMBER},
}


class ErrorCode(str, Enum):
    """Error codes a client can switch on; the human message says the rest."""

    BAD_MESSAGE = "bad_message"  # undecodable frames, wrong schema, bad array
    VERSION_MISMATCH = "version_mismatch"
    BAD_PARAMS = "bad_params"  # a well-formed request asking for something invalid
    UNKNOWN_JOB = "unknown_job"
    CANCELLED = "cancelled"
    SUPERSEDED = "superseded"
    JOB_FAILED = "job_failed"  # the job raised: the server keeps serving
    SHUTTING_DOWN = "shutting_down"
    BUSY = "busy"  # the job queue is full: try again once a job has finished
    FORBIDDEN = "forbidden"  # a path outside the backend's roots, or shutdown from an unauthenticated client
    TIMEOUT = "timeout"  # client side: no answer in time
    DISCONNECTED = "disconnected"  # client side: heartbeats stopped


def new_id() -> str:
    return uuid.uuid4().hex


@dataclass
class Message:
    kind: str
    content: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    id: str = field(default_factory=new_id)
    parent: str | None = None

    def reply(self, kind: str, content: dict[str, Any] | None = None,
              arrays: dict[str, np.ndarray] | None = None) -> "Message":
        """A message answering this one (its ``parent`` is this message's id)."""
        return Message(kind, content or {}, arrays or {}, parent=self.id)

    def error(self, code: ErrorCode, message: str) -> "Message":
        return self.reply("error", {"code": code.value, "message": message})
