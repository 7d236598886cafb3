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

from backend.diffusion.samplers import cancel_on
from backend.generators import Cancelled, Generator, registry
from backend.metrics.reference import load_classifier
from backend.metrics.style_classifier import StyleClassifier
from backend.simulation.material import material_masks
from protocol import ErrorCode, Message

from .brush_job import BrushRequest
from .curve_job import CurveRequest
from .edit_log_job import EditLogRequest
from .export_job import ExportRequest
from .jobs import Job, JobQueue
from .style_job import StyleFromRequest
from .world_job import OpenWorlds, WorldTilesRequest

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
    def __init__(self, jobs: JobQueue, outbox: Outbox, device: str, fail_after_steps: int | None = None):
        super().__init__(name="worldsculpt-worker", daemon=True)
        self.jobs = jobs
        self.outbox = outbox
        self.device = device
        self.fail_after_steps = fail_after_steps  # fault injection for testing JOB_FAILED (--fail-after-steps)
        self.stopping = threading.Event()
        self._generators: dict[str, Generator] = {}
        self._worlds = OpenWorlds()
        self._classifier: StyleClassifier | None = None  # loaded by the first style_from job

    def run(self) -> None:
        self._warm_up()
        while not self.stopping.is_set():
            job = self.jobs.next(timeout=0.2)
            if job is not None:
                self._run(job)
        self.outbox.close()

    def _send(self, job: Job, kind: str, content: dict[str, Any], arrays: dict[str, np.ndarray] | None = None,
              final: bool = False) -> None:
        message = Message(kind, {"job_id": job.id, **content}, arrays or {}, parent=job.request_id)
        self.outbox.put(Outgoing(job.identity, message, job.id if final else None))

    def _run(self, job: Job) -> None:
        if isinstance(job.request, ExportRequest):
            self._export(job, job.request)
            return
        if isinstance(job.request, EditLogRequest):
            self._edit_log(job, job.request)
            return
        if isinstance(job.request, WorldTilesRequest):
            self._world_tiles(job, job.request)
            return
        if isinstance(job.request, (BrushRequest, CurveRequest)):
            self._edit(job, job.request)
            return
        if isinstance(job.request, StyleFromRequest):
            self._style_from(job, job.request)
            return
        request = job.request
        self._send(job, "progress", {"step": 0, "total": 0, "stage": "started"})
        try:
            generator = self._generator(request.generator)
            heightfield = generator.generate(request, lambda s, t, p: self._on_step(job, s, t, p),
                                             lambda: self._check_cancel(job))
        except Cancelled as exc:
            code = ErrorCode.SHUTTING_DOWN if self.stopping.is_set() else ErrorCode.CANCELLED
            self._send(job, "error", {"code": code.value, "message": f"job cancelled: {exc}"}, final=True)
            return
        except Exception as exc:  # a failing job must not take the server down
            log.error("job %s failed:\n%s", job.id, traceback.format_exc())
            self._send(job, "error", {"code": ErrorCode.JOB_FAILED.value,
                                      "message": f"{request.generator} failed: {type(exc).__name__}: {exc}"},
                       final=True)
            return
        heights = heightfield.heights
        meta = {"cell_size": float(heightfield.cell_size), "resolution": int(heights.shape[0]),
                "size_m": request.size_m, "generator": request.generator, "seed": request.seed,
                "min_m": float(heights.min()), "max_m": float(heights.max())}
        arrays = {"heights": heights}
        if request.masks:  # for the add-on's terrain material: one (H, W, N) array, its layers named in meta
            masks = material_masks(heights, heightfield.cell_size)
            meta["mask_names"], arrays["masks"] = list(masks), np.stack(list(masks.values()), axis=-1)
        self._send(job, "result", {"meta": meta}, arrays, final=True)

    def _export(self, job: Job, request: ExportRequest) -> None:
        self._send(job, "progress", {"step": 0, "total": 1, "stage": "exporting"})
        try:
            files = request.run()
        except Exception as exc:  # unwritable folder, full disk...: report it and keep serving
            log.error("export job %s failed:\n%s", job.id, traceback.format_exc())
            self._send(job, "error", {"code": ErrorCode.JOB_FAILED.value,
                                      "message": f"export failed: {type(exc).__name__}: {exc}"}, final=True)
            return
        self._send(job, "result", {"meta": {"files": [str(f) for f in files]}}, final=True)

    def _edit_log(self, job: Job, request: EditLogRequest) -> None:
        """Undo / redo edits in a world's log (the artist undid strokes in Blender)."""
        try:
            done = request.run()
        except Exception as exc:  # a damaged world or a vanished edit: say so and keep serving
            log.error("edit_log job %s failed:\n%s", job.id, traceback.format_exc())
            self._send(job, "error", {"code": ErrorCode.JOB_FAILED.value,
                                      "message": f"edit log not updated: {type(exc).__name__}: {exc}"}, final=True)
            return
        self._send(job, "result", {"meta": done}, final=True)

    def _edit(self, job: Job, request: BrushRequest | CurveRequest) -> None:
        """Edit the stroke's or curve's window, log it when committed, answer with the window (previews meanwhile)."""
        self._send(job, "progress", {"step": 0, "total": 0, "stage": "started"})

        def on_step(step: int, total: int, window: tuple[int, int, int, int], heights: np.ndarray) -> None:
            if job.cancel.is_set():
                raise Cancelled(f"stopped at step {step} of {total}")
            job.step, job.total = step, total
            stage = "brushing" if job.kind == "brush" else "shaping"
            self._send(job, "progress", {"step": step, "total": total, "stage": stage})
            self._send(job, "preview", {"step": step, "meta": {"window": list(window)}}, {"heights": heights})

        try:
            edit, extra = request.run(self._generator("diffusion"), on_step)
            seq = request.record(edit) if request.edit.commit and request.edit.world is not None else None
        except Cancelled as exc:
            code = ErrorCode.SHUTTING_DOWN if self.stopping.is_set() else ErrorCode.CANCELLED
            self._send(job, "error", {"code": code.value, "message": f"job cancelled: {exc}"}, final=True)
            return
        except Exception as exc:  # a failing stroke must not take the server down; the client keeps its mesh
            log.error("%s job %s failed:\n%s", job.kind, job.id, traceback.format_exc())
            self._send(job, "error", {"code": ErrorCode.JOB_FAILED.value,
                                      "message": f"{job.kind} failed: {type(exc).__name__}: {exc}"}, final=True)
            return
        meta = {"window": list(edit.window), "kind": request.kind, "commit": request.edit.commit, "edit_seq": seq}
        self._send(job, "result", {"meta": meta}, {"heights": edit.heights, "weight": edit.weight, **extra},
                   final=True)

    def _style_from(self, job: Job, request: StyleFromRequest) -> None:
        """Read the reference, measure it, answer with its style weights and sliders (no arrays)."""
        self._send(job, "progress", {"step": 0, "total": 1, "stage": "measuring style"})
        try:
            if self._classifier is None:
                self._classifier = load_classifier()
            meta = request.run(self._classifier)
        except Exception as exc:  # an unreadable file, a file without its cell size, no classifier: say which
            log.error("style_from job %s failed:\n%s", job.id, traceback.format_exc())
            self._send(job, "error", {"code": ErrorCode.JOB_FAILED.value,
                                      "message": f"style_from failed: {type(exc).__name__}: {exc}"}, final=True)
            return
        self._send(job, "result", {"meta": meta}, final=True)

    def _world_tiles(self, job: Job, request: WorldTilesRequest) -> None:
        self._send(job, "progress", {"step": 0, "total": len(request.tiles), "stage": "world_tiles"})
        try:
            models = self._generator("diffusion")
            meta, heights = self._worlds.run(
                request, models.base, models.superres, cancel_on(job.cancel),
                lambda done, total: self._send(job, "progress", {"step": done, "total": total, "stage": "world_tiles"}),
                getattr(models, "memory", None))
        except Cancelled as exc:
            code = ErrorCode.SHUTTING_DOWN if self.stopping.is_set() else ErrorCode.CANCELLED
            self._send(job, "error", {"code": code.value, "message": f"job cancelled: {exc}"}, final=True)
            return
        except Exception as exc:  # a damaged tile or an unwritable folder: report it and keep serving
            log.error("world_tiles job %s failed:\n%s", job.id, traceback.format_exc())
            self._send(job, "error", {"code": ErrorCode.JOB_FAILED.value,
                                      "message": f"world_tiles failed: {type(exc).__name__}: {exc}"}, final=True)
            return
        self._send(job, "result", {"meta": meta}, {"heights": heights}, final=True)

    def _check_cancel(self, job: Job) -> None:
        if job.cancel.is_set():
            raise Cancelled(f"stopped during step {job.step + 1} of {job.total}")

    def _on_step(self, job: Job, step: int, total: int, preview: np.ndarray | None) -> None:
        if job.cancel.is_set():
            raise Cancelled(f"stopped at step {step} of {total}")
        job.step, job.total = step, total
        self._send(job, "progress", {"step": step, "total": total, "stage": "generating"})
        if preview is not None:
            n = preview.shape[0]
            meta = {"resolution": n, "size_m": job.request.size_m, "cell_size": job.request.size_m / (n - 1)}
            self._send(job, "preview", {"step": step, "meta": meta}, {"heights": preview.astype(np.float32)})
        if self.fail_after_steps is not None and step >= self.fail_after_steps:
            raise RuntimeError(f"injected failure after step {step} (--fail-after-steps {self.fail_after_steps})")

    def _warm_up(self) -> None:
        """Load the default generator (weights, first kernels) before the first job asks for it."""
        try:
            self._generator(registry.default_name())
        except Exception:  # a broken weight file must not stop the server: jobs will report it
            log.error("could not load the default generator:\n%s", traceback.format_exc())

    def _generator(self, name: str) -> Generator:
        """One instance per generator, created on this thread (it may load weights onto the device)."""
        if name not in self._generators:
            self._generators[name] = registry.get(name).factory(self.device)
        return self._generators[name]
