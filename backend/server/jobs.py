"""The job queue shared by the socket thread (submits, cancels, pings) and the worker (runs jobs).

A newer job of the same kind for the same ``target`` supersedes the queued older ones: while an artist drags a
slider only the latest request is worth computing. Every job remembers the client identity and
the submit message id, so its progress, previews and result go back to whoever asked.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from protocol import new_id

MAX_QUEUED = 32  # jobs waiting behind the running one; more are refused as ``busy``


class QueueFull(RuntimeError):
    """The queue holds MAX_QUEUED jobs already (answered ``busy``)."""


@dataclass
class Job:
    identity: bytes  # ROUTER routing id of the client that submitted it
    request_id: str  # the submit_request's message id: parent of every message about this job
    kind: str
    target: str  # e.g. the Blender object name; "" never supersedes anything
    request: Any  # what the kind's parse made of the params (``job_kinds.JOB_KINDS``)
    id: str = field(default_factory=new_id)
    cancel: threading.Event = field(default_factory=threading.Event)
    step: int = 0
    total: int = 0

    def summary(self) -> dict[str, Any]:
        return {"job_id": self.id, "job": self.kind, "target": self.target, "step": self.step, "total": self.total}


class JobQueue:
    """Thread-safe FIFO plus the one running job. ``finish`` is called once the last message is sent."""

    def __init__(self, max_queued: int = MAX_QUEUED) -> None:
        self.max_queued = max_queued
        self._lock = threading.Condition()
        self._queued: deque[Job] = deque()
        self._running: Job | None = None
        self._closed = False

    def submit(self, job: Job) -> list[Job]:
        """Queue ``job``; returns the queued jobs for the same target that it superseded. QueueFull if full."""
        with self._lock:
            superseded = [j for j in self._queued if job.target and (j.target, j.kind) == (job.target, job.kind)]
            if len(self._queued) - len(superseded) >= self.max_queued:
                raise QueueFull(f"the backend already holds {self.max_queued} queued jobs: try again when "
                                "one has finished, or cancel some")
            for old in superseded:
                self._queued.remove(old)
            self._queued.append(job)
            self._lock.notify_all()
            return superseded

    def next(self, timeout: float) -> Job | None:
        """The worker's call: the oldest queued job, now running, or None after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._lock:
            # Wait while the previous job's last message is still on its way (it is held until sent).
            while (self._running is not None or not self._queued) and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._lock.wait(remaining)
            if self._closed:
                return None
            self._running = self._queued.popleft()
            return self._running

    def cancel(self, job_id: str) -> tuple[Job | None, bool]:
        """Flag the running job or drop a queued one: (the job or None, whether it is still running)."""
        with self._lock:
            if self._running is not None and self._running.id == job_id:
                self._running.cancel.set()
                return self._running, True
            for job in self._queued:
                if job.id == job_id:
                    self._queued.remove(job)
                    job.cancel.set()
                    return job, False
            return None, False

    def finish(self, job_id: str) -> None:
        """The job's final message has been handed to the socket: it is no longer held."""
        with self._lock:
            if self._running is not None and self._running.id == job_id:
                self._running = None
                self._lock.notify_all()

    def held_ids(self) -> list[str]:
        """Ids of the running and queued jobs (what ``pong`` lists)."""
        with self._lock:
            running = [self._running.id] if self._running is not None else []
            return running + [j.id for j in self._queued]

    def snapshot(self) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        with self._lock:
            running = self._running.summary() if self._running is not None else None
            return running, [j.summary() for j in self._queued]

    def close(self) -> list[Job]:
        """Stop handing out jobs, flag the running one and return the queued ones (now dropped)."""
        with self._lock:
            self._closed = True
            if self._running is not None:
                self._running.cancel.set()
            dropped = list(self._queued)
            self._queued.clear()
            self._lock.notify_all()
            return dropped
