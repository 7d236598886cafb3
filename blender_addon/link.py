"""The connection to the backend and the timer that turns its messages into Blender changes.

``Link`` holds the protocol ``Client`` and the one running job; it never blocks (``poll(0)``) and
does not touch bpy. ``tick`` is the ``bpy.app.timers`` callback: it runs on Blender's main thread,
drains the link and dispatches progress, previews, results and errors to the scene and the mesh.
There are no threads, so bpy is never touched off the main thread. Headless Blender runs no timers:
callers (tests) call ``tick()`` themselves.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

import bpy
import numpy as np

from . import edit_history, material, mesh
from .local_backend import backend as local_backend
from .menus import set_menus
from .properties import set_styles
from .protocol import ErrorCode, Message
from .protocol.client import BackendError, Client, CurveKeys

HEARTBEAT_TIMEOUT_S = 5.0  # no pong for this long: the backend is shown as disconnected
TICK_BUSY_S = 0.02  # timer interval while a job runs (generate, export, ...): progress and previews
# while a brush stroke is in flight: a finished dab waits at most this long to show. Blender's event loop sleeps
# 5 ms when it has no events, so a shorter interval would fire no sooner; 20 ms made a dab's latency move in 21 ms
# steps (a 34 ms dab showed at 42 or 63 ms). A drain that finds nothing costs a poll of the socket, a few us
TICK_STROKE_S = 0.005
TICK_IDLE_S = 0.5


@dataclass
class Job:
    job_id: str  # the submit's message id (``Client.submit_nowait``): every message about the job has it as parent
    target: str
    scene: str  # name, not reference: references die across undo
    submitted: float = field(default_factory=time.monotonic)
    preview: mesh.Preview | None = None


@dataclass
class Stroke:
    """A brush stroke in flight: the terrain it started from and its jobs, newest last.

    Every job of a stroke carries the whole stroke so far on the same starting terrain, so the newest
    result replaces the older ones and a superseded job loses nothing.
    """

    target: str
    scene: str
    kind: str
    base: np.ndarray  # (H, W) float32 heights when the stroke began
    cell_size: float
    jobs: dict[str, int] = field(default_factory=dict)  # job id -> sequence number
    shown: int = -1  # sequence number of the newest result written into the mesh
    final: str | None = None  # the job that commits the stroke (mouse released / execute)
    started: float = field(default_factory=time.monotonic)


class Link:
    """One backend connection and at most one job in flight. No bpy."""

    def __init__(self) -> None:
        self.client: Client | None = None
        self.hello: dict[str, Any] | None = None
        self.job: Job | None = None
        self.export_job: Job | None = None  # an export runs beside a generate job, never replaces it
        self.stroke: Stroke | None = None  # the brush stroke being drawn or finishing
        self.style_job: Job | None = None  # a reference style being measured
        self.edit_log_jobs: list[Job] = []  # worlds' edit logs following Blender's undo / redo
        self._hello_id: str | None = None

    def connect(self, address: str, keys_dir: str = "") -> None:
        """Start connecting; the hello reply arrives through ``drain`` (ZeroMQ queues it meanwhile).
        ``keys_dir``: the CURVE keys of a backend started with --keys (empty: none)."""
        self.close()
        keys = CurveKeys.load(keys_dir) if keys_dir else None
        self.client = Client(address, heartbeat_timeout=HEARTBEAT_TIMEOUT_S, keys=keys)
        self._hello_id = self.client.send(Message("hello_request", {"client": "worldsculpt-blender"}))

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        self.client, self.hello, self._hello_id, self.export_job, self.style_job = None, None, None, None, None
        self.edit_log_jobs = []

    @property
    def connected(self) -> bool:
        return self.client is not None and self.client.connected and self.hello is not None

    def submit(self, params: dict[str, Any], target: str, scene: str) -> Job:
        if self.client is None or not self.connected:
            raise BackendError(ErrorCode.DISCONNECTED.value, "not connected to a backend")
        self.job = Job(self.client.submit_nowait("generate", params, target), target, scene)
        return self.job

    def submit_export(self, params: dict[str, Any], heights: Any, target: str, scene: str) -> Job:
        if self.client is None or not self.connected:
            raise BackendError(ErrorCode.DISCONNECTED.value, "not connected to a backend")
        self.export_job = Job(self.client.submit_nowait("export", params, target, {"heights": heights}), target, scene)
        return self.export_job

    def submit_style(self, params: dict[str, Any], arrays: dict[str, Any], scene: str) -> Job:
        """Ask for the style of a reference (a file path in params, or its heights); one per scene at a time."""
        if self.client is None or not self.connected:
            raise BackendError(ErrorCode.DISCONNECTED.value, "not connected to a backend")
        target = f"style_from:{scene}"
        self.style_job = Job(self.client.submit_nowait("style_from", params, target, arrays), target, scene)
        return self.style_job

    def submit_brush(self, params: dict[str, Any], final: bool, job: str = "brush",
                     mask: np.ndarray | None = None) -> str:
        """Send the current stroke (all its points so far, or the region ``mask``) on its starting terrain;
        returns the job id. ``job`` "curve" sends a curve guide the same way: one final job, applied like a stroke."""
        stroke = self.stroke
        if self.client is None or not self.connected or stroke is None:
            raise BackendError(ErrorCode.DISCONNECTED.value, "not connected to a backend")
        arrays = {"heights": stroke.base} if mask is None else {"heights": stroke.base, "mask": mask}
        job_id = self.client.submit_nowait(job, params, stroke.target, arrays)
        stroke.jobs[job_id] = len(stroke.jobs)
        if final:
            stroke.final = job_id
        return job_id

    def submit_edit_log(self, params: dict[str, Any]) -> Job:
        """Undo / redo edits in a world's log; jobs for different worlds run side by side."""
        if self.client is None or not self.connected:
            raise BackendError(ErrorCode.DISCONNECTED.value, "not connected to a backend")
        target = f"edit_log:{params['world']}"
        job = Job(self.client.submit_nowait("edit_log", params, target), target, "")
        self.edit_log_jobs.append(job)
        return job

    def owns_edit_log(self, msg: Message) -> bool:
        return any(j.job_id == msg.parent for j in self.edit_log_jobs)

    def cancel(self) -> Job | None:
        """Ask the backend to stop the job and forget it here at once: nothing of it gets applied."""
        job, self.job = self.job, None
        if job is not None and self.client is not None:
            self.client.cancel_submitted(job.job_id)
        return job

    def drain(self) -> list[Message]:
        """Everything that has arrived, without waiting; records the hello reply on the way."""
        if self.client is None:
            return []
        messages = self.client.poll(0)
        for msg in messages:
            if msg.kind == "hello_reply" and msg.parent == self._hello_id:
                self.hello = msg.content
        return messages

    def owns(self, msg: Message) -> bool:
        """Is this message about the job we are waiting for?"""
        return self.job is not None and self.job.job_id == msg.parent

    def owns_stroke(self, msg: Message) -> bool:
        return self.stroke is not None and msg.parent in self.stroke.jobs

    def owns_export(self, msg: Message) -> bool:
        return self.export_job is not None and self.export_job.job_id == msg.parent

    def owns_style(self, msg: Message) -> bool:
        return self.style_job is not None and self.style_job.job_id == msg.parent


link = Link()
history = edit_history.History()  # edits this session committed, for sync_edit_log

# Modes with jobs of their own (explore mode) hook in here: each is called on every tick with the
# messages just drained (it picks out its own) and returns True while it wants the fast tick.
modes: list[Callable[[list[Message]], bool]] = []


# -- the bpy side --------------------------------------------------------------------------------

def _settings(scene_name: str | None = None) -> list[Any]:
    scenes = [bpy.data.scenes.get(scene_name)] if scene_name else list(bpy.data.scenes)
    return [s.worldsculpt for s in scenes if s is not None]


def _set(settings: Any, **values: Any) -> None:
    """Write only what changed (every write would otherwise mark the file dirty and redraw)."""
    for key, value in values.items():
        if getattr(settings, key) != value:
            setattr(settings, key, value)


def _redraw() -> None:
    wm = bpy.context.window_manager
    for window in wm.windows if wm else ():
        for area in window.screen.areas:
            if area.type == "VIEW_3D":
                area.tag_redraw()


def push_undo(message: str) -> bool:
    """Make the change just applied undoable. Timers run with no window in context, so borrow one."""
    context = bpy.context
    try:
        if context.window is None and context.window_manager and context.window_manager.windows:
            window = context.window_manager.windows[0]
            with context.temp_override(window=window, screen=window.screen):
                return "FINISHED" in bpy.ops.ed.undo_push(message=message)
        return "FINISHED" in bpy.ops.ed.undo_push(message=message)
    except RuntimeError:  # poll failed: no undo stack (e.g. background mode without a window)
        return False


def end_job(job: Job | None, error: str = "", status: str = "") -> None:
    """Abandon a job: the artist's mesh goes back exactly as it was; the reason goes to the panel."""
    if job is None:
        return
    mesh.discard_preview(job.preview)
    for s in _settings(job.scene):
        _set(s, running=False, progress=0.0, last_error=error or s.last_error,
             status=status or ("Failed" if error else "Stopped"))


def _on_result(job: Job, msg: Message) -> None:
    scene = bpy.data.scenes.get(job.scene)
    if scene is None:
        raise ValueError(f"scene {job.scene!r} is gone")
    heights, meta = msg.arrays["heights"], msg.content["meta"]
    obj = mesh.apply_result(scene, job.target, heights, float(meta["cell_size"]), job.preview)
    job.preview = None
    if "masks" in msg.arrays:
        material.write_masks(obj.data, list(meta["mask_names"]), msg.arrays["masks"])
        material.assign_terrain_material(obj)
    h, w = heights.shape
    material.update_water(scene, obj, scene.worldsculpt.water_plane, (w - 1) * meta["cell_size"],
                          (h - 1) * meta["cell_size"])
    undoable = push_undo("Worldsculpt: generate")
    took = time.monotonic() - job.submitted
    _set(scene.worldsculpt, running=False, progress=1.0, last_error="",
         status=f"Done: {w}x{h}, {meta.get('min_m', 0):.0f}..{meta.get('max_m', 0):.0f} m in {took:.1f} s"
                + ("" if undoable else " (not undoable)"))


def _on_job_message(msg: Message) -> None:
    job = link.job
    if job is None:
        return
    if msg.kind == "progress":
        c = msg.content
        for s in _settings(job.scene):
            _set(s, progress=min(1.0, c["step"] / max(1, c["total"])), status=f"{c['stage']} {c['step']}/{c['total']}")
    elif msg.kind == "preview" and "heights" in msg.arrays:
        scene = bpy.data.scenes.get(job.scene)
        if scene is not None:
            job.preview = mesh.show_preview(scene, job.target, msg.arrays["heights"],
                                            float(msg.content["meta"]["cell_size"]), job.preview)
    elif msg.kind == "result":
        link.job = None
        try:
            _on_result(job, msg)
        except Exception:
            end_job(job, error=f"result not applied: {traceback.format_exc(limit=1).strip().splitlines()[-1]}")
            raise
    elif msg.kind == "error":
        link.job = None
        code = msg.content["code"]
        end_job(job, error=f"{code}: {msg.content['message']}",
                status="Cancelled" if code == ErrorCode.CANCELLED.value else "Failed")


def end_stroke(error: str = "", status: str = "") -> None:
    """Drop the stroke in flight and put its starting terrain back: the mesh is as it was before it."""
    stroke, link.stroke = link.stroke, None
    if stroke is None:
        return
    if link.client is not None and link.connected:
        for job_id in stroke.jobs:
            link.client.cancel_submitted(job_id)
    obj = bpy.data.objects.get(stroke.target)
    if obj is not None and obj.type == "MESH":
        mesh.write_heights(obj.data, stroke.base, stroke.cell_size)
    for s in _settings(stroke.scene):
        _set(s, brush_status=status or ("Stroke failed" if error else "Stroke cancelled"),
             last_error=error or s.last_error)


def _on_stroke_message(msg: Message) -> None:
    """A brush job's preview or result goes into the terrain's window if it is newer than what is shown."""
    stroke = link.stroke
    job_id = msg.parent
    seq = stroke.jobs[job_id]
    if msg.kind == "error":
        del stroke.jobs[job_id]
        if msg.content["code"] != ErrorCode.SUPERSEDED.value:  # a newer job of this stroke carries its points
            end_stroke(error=f"{msg.content['code']}: {msg.content['message']}")
        return
    if msg.kind not in ("preview", "result") or seq < stroke.shown or "heights" not in msg.arrays:
        return
    obj = bpy.data.objects.get(stroke.target)
    if obj is None:
        end_stroke(error=f"terrain {stroke.target!r} is gone")
        return
    mesh.write_window(obj, tuple(msg.content["meta"]["window"]), msg.arrays["heights"])
    if msg.kind == "result" and "masks" in msg.arrays:  # a simulation's flow, deposition and wear
        material.write_masks(obj.data, list(msg.content["meta"]["mask_names"]), msg.arrays["masks"])
    if msg.kind == "preview":
        return
    stroke.shown = seq
    del stroke.jobs[job_id]
    if job_id == stroke.final:
        link.stroke = None
        _remember_edit(obj.data, stroke.scene, msg.content["meta"].get("edit_seq"))
        undoable = push_undo(f"Worldsculpt: {stroke.kind}")
        for s in _settings(stroke.scene):
            _set(s, last_error="", brush_status=f"{stroke.kind}: {1000 * (time.monotonic() - stroke.started):.0f} ms"
                                                 + ("" if undoable else " (not undoable)"))


def _remember_edit(terrain: bpy.types.Mesh, scene_name: str, seq: int | None) -> None:
    """A committed edit the world logged: listed on the mesh (before the undo push, so undo rewinds the list)."""
    scene = bpy.data.scenes.get(scene_name)
    if seq is None or scene is None or not scene.worldsculpt.edit_log_dir:
        return
    world = bpy.path.abspath(scene.worldsculpt.edit_log_dir)
    seqs = list(terrain.get(edit_history.SEQS_KEY, [])) if terrain.get(edit_history.WORLD_KEY) == world else []
    terrain[edit_history.WORLD_KEY], terrain[edit_history.SEQS_KEY] = world, [*seqs, int(seq)]
    history.commit(world, int(seq))


@bpy.app.handlers.persistent
def sync_edit_log(*_: Any) -> None:
    """After Blender's undo or redo: undo or redo in each world's log the edits the meshes stopped or started
    listing (an ``edit_log`` job per world; its answer shows in the Brush panel)."""
    listed: dict[str, set[int]] = {}
    for terrain in bpy.data.meshes:
        if terrain.get(edit_history.WORLD_KEY):
            listed.setdefault(terrain[edit_history.WORLD_KEY], set()).update(terrain.get(edit_history.SEQS_KEY, []))
    for world, (undo, redo) in history.changes(listed).items():
        try:
            link.submit_edit_log({"world": world, "undo": undo, "redo": redo})
        except BackendError as exc:
            for s in _settings():
                _set(s, brush_status=f"Edit log not updated: {exc}")


def _on_edit_log_message(msg: Message) -> None:
    if msg.kind not in ("result", "error"):
        return
    link.edit_log_jobs = [j for j in link.edit_log_jobs if j.job_id != msg.parent]
    if msg.kind == "result":
        done = msg.content["meta"]
        status = f"Edit log: {len(done['undone'])} undone, {len(done['redone'])} redone"
    else:
        status = f"Edit log not updated: {msg.content['code']}: {msg.content['message']}"
    for s in _settings():
        _set(s, brush_status=status)


def _on_export_message(msg: Message) -> None:
    """An export job's progress, result (file count) or error, shown in the Export panel's status."""
    job = link.export_job
    if job is None or msg.kind == "preview":
        return
    if msg.kind == "progress":
        status = "Exporting..."
    else:
        link.export_job = None
        if msg.kind == "result":
            files = msg.content["meta"]["files"]
            status = f"Exported {len(files)} files in {time.monotonic() - job.submitted:.1f} s"
        else:
            status = f"Export failed: {msg.content['code']}: {msg.content['message']}"
    for s in _settings(job.scene):
        _set(s, export_status=status)


def _on_style_message(msg: Message) -> None:
    """A reference style's result fills the scene's style (one undo step); an error only says why."""
    job = link.style_job
    if msg.kind not in ("result", "error"):
        return
    link.style_job = None
    scene = bpy.data.scenes.get(job.scene)
    if scene is None:
        return
    settings = scene.worldsculpt
    if msg.kind == "error":
        _set(settings, style_status=f"Reference failed: {msg.content['code']}: {msg.content['message']}")
        return
    try:
        status = settings.adopt_style(msg.content["meta"])
    except ValueError as exc:
        _set(settings, style_status=f"Reference not used: {exc}")
        return
    undoable = push_undo("Worldsculpt: reference style")
    _set(settings, style_status=status + ("" if undoable else " (not undoable)"))


def _lost(messages: list[Message]) -> Message | None:
    """The backend is gone: the client stopped hearing heartbeats, or the process we started exited
    (seen at once, without waiting for the heartbeat timeout); then the link is closed."""
    lost = next((m for m in messages if m.kind == "error" and not m.content.get("job_id")
                 and m.content.get("code") == ErrorCode.DISCONNECTED.value), None)
    died = local_backend.take_exit_report()
    if died is not None and link.client is not None:
        link.close()
        return Message("error", {"code": ErrorCode.DISCONNECTED.value, "message": died})
    return lost


def _on_connection(messages: list[Message]) -> None:
    """Connection-level state for every scene's panel: connected, device, styles, dead backend."""
    lost = _lost(messages)
    if lost is not None and link.job is not None:
        job, link.job = link.job, None
        end_job(job, error=f"disconnected: {lost.content['message']}", status="Backend lost")
    if lost is not None and link.export_job is not None:
        export, link.export_job = link.export_job, None
        for s in _settings(export.scene):
            _set(s, export_status=f"Export lost: {lost.content['message']}")
    if lost is not None and link.stroke is not None:
        end_stroke(error=f"disconnected: {lost.content['message']}")
    if lost is not None and link.style_job is not None:
        style, link.style_job = link.style_job, None
        for s in _settings(style.scene):
            _set(s, style_status=f"Reference lost: {lost.content['message']}")
    hello = next((m for m in messages if m.kind == "hello_reply"), None)
    for s in _settings():
        if hello is not None:
            set_styles(s.id_data, list(hello.content["styles"]))
            set_menus(s.id_data, hello.content.get("menus"))
            _set(s, device=str(hello.content["device"]))
        if link.connected:
            if not s.connected or hello is not None:
                _set(s, connected=True, status=f"Connected: backend {link.hello['backend_version']}"
                                                f" on {link.hello['device']}")
        elif link.client is not None or lost is not None:
            reason = lost.content["message"] if lost is not None else "waiting for the backend to answer"
            _set(s, connected=False, status=f"Disconnected: {reason}")
        else:
            _set(s, connected=False)


def tick() -> float:
    """The timer callback: drain, dispatch, return the next interval. Never raises, never waits."""
    messages: list[Message] = []
    try:
        messages = link.drain()
        _on_connection(messages)
        for msg in messages:
            if msg.kind in ("progress", "preview", "result", "error") and link.owns(msg):
                try:
                    _on_job_message(msg)
                except Exception:
                    traceback.print_exc()
                    if link.job is not None:  # a preview failed: keep the job, say why
                        for s in _settings(link.job.scene):
                            _set(s, last_error=f"preview not shown: {traceback.format_exc(limit=1).splitlines()[-1]}")
            elif link.owns_stroke(msg):
                try:
                    _on_stroke_message(msg)
                except Exception:  # e.g. the terrain changed shape mid-stroke: give the stroke up
                    traceback.print_exc()
                    end_stroke(error=f"stroke not applied: {traceback.format_exc(limit=1).splitlines()[-1]}")
            elif msg.kind in ("progress", "result", "error") and link.owns_export(msg):
                _on_export_message(msg)
            elif link.owns_style(msg):
                _on_style_message(msg)
            elif link.owns_edit_log(msg):
                _on_edit_log_message(msg)
            elif msg.kind == "error" and not msg.content.get("job_id") and msg.content["code"] != "disconnected":
                for s in _settings():
                    _set(s, last_error=f"{msg.content['code']}: {msg.content['message']}")
        if messages:
            _redraw()
    except Exception:  # a timer that raises is unregistered by Blender: report and keep going
        traceback.print_exc()
    busy = any(j is not None for j in (link.job, link.export_job, link.style_job)) or bool(link.edit_log_jobs)
    for mode in modes:
        try:
            busy = mode(messages) or busy
        except Exception:
            traceback.print_exc()
    return interval(busy)


def interval(busy: bool) -> float:
    """The timer's next interval: the stroke's while a brush stroke is in flight, else busy or idle."""
    return TICK_STROKE_S if link.stroke is not None else TICK_BUSY_S if busy else TICK_IDLE_S


def wake() -> None:
    """A job was just sent: drain again soon (``interval``), not after the idle interval the timer last asked for."""
    if bpy.app.timers.is_registered(tick):
        bpy.app.timers.unregister(tick)
    bpy.app.timers.register(tick, first_interval=interval(busy=True), persistent=True)


def register() -> None:
    if not bpy.app.timers.is_registered(tick):
        bpy.app.timers.register(tick, first_interval=TICK_IDLE_S, persistent=True)
    for handlers in (bpy.app.handlers.undo_post, bpy.app.handlers.redo_post):
        if sync_edit_log not in handlers:
            handlers.append(sync_edit_log)


def unregister() -> None:
    if bpy.app.timers.is_registered(tick):
        bpy.app.timers.unregister(tick)
    for handlers in (bpy.app.handlers.undo_post, bpy.app.handlers.redo_post):
        if sync_edit_log in handlers:
            handlers.remove(sync_edit_log)
    history.clear()
    end_job(link.cancel())
    end_stroke()
    link.close()
    local_backend.stop()
