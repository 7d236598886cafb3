"""Explore mode: the world's tiles stream in around the viewpoint as it moves, nearest first.

Timer-driven, not modal: the viewport stays the artist's to fly (any navigation, any tool), and the
mode runs on the link's ``bpy.app.timers`` tick (``link.modes``), so bpy is touched on the main
thread only and nothing waits. Each tick it reads the viewpoint (the 3D view's centre, or the scene
camera), asks ``explore_plan`` what is wanted, drops the farthest tiles beyond the limit, places
what arrived and keeps one ``world_tiles`` job in flight, cancelled when the view has moved past it.

Tiles are mesh objects (vertices in world metres, object at the origin, so neighbours share edge
vertices exactly) in the collection ``COLLECTION``, each marked with ``[tx, ty, lod]``. A dead
backend only pauses the mode: the tiles stay, the panel says why, and it resumes on reconnect.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bpy
import numpy as np

from . import explore_plan as plan
from . import link as link_module
from . import mesh
from .explore_plan import Coords
from .link import link
from .protocol import ErrorCode, Message
from .protocol.client import BackendError, Client

COLLECTION = "Worldsculpt World"
TILE_KEY = "worldsculpt_tile"  # on each tile object: [tx, ty, lod]
WORLD_KEY = "worldsculpt_world"  # on the collection: the world folder its tiles come from
TARGET = "explore"  # the jobs' target: a newer queued world_tiles job from explore supersedes older ones


@dataclass
class Request:
    """The one world_tiles job in flight; no tiles = asking for the world's geometry."""

    job_id: str
    lod: int
    tiles: list[Coords]
    client: Client  # a reconnect makes a new client: the job is then gone
    sent: float = field(default_factory=time.monotonic)


@dataclass
class Explorer:
    """Explore mode's state (no bpy references: names only, which survive undo)."""

    scene: str | None = None
    world: str = ""
    create: dict[str, Any] = field(default_factory=dict)
    rings: plan.Rings = field(default_factory=plan.Rings)
    follow: str = "VIEW"
    tile_m: float | None = None
    request: Request | None = None
    shown: dict[Coords, int] = field(default_factory=dict)  # tile -> lod on screen
    heights: dict[Coords, tuple[int, np.ndarray]] = field(default_factory=dict)  # tile -> (lod, heights received)
    names: dict[Coords, str] = field(default_factory=dict)  # tile -> object name
    arrivals: list[tuple[Coords, int, float]] = field(default_factory=list)  # (tile, lod, seconds since start)
    started: float = 0.0

    @property
    def active(self) -> bool:
        return self.scene is not None

    # -- the tick ----------------------------------------------------------------------------
    def update(self, messages: list[Message]) -> bool:
        """One tick: results in, tiles out, next job. Returns True while exploring (fast ticks)."""
        if not self.active:
            return False
        scene = bpy.data.scenes.get(self.scene)
        if scene is None:
            self.stop("the scene is gone")
            return False
        for msg in messages:
            if self.request is not None and self.request.job_id == msg.parent:
                self._on_message(scene, msg)
                if not self.active:
                    return False
        self._forget_deleted()
        if self.request is not None and (link.client is not self.request.client or not link.connected):
            self.request = None  # the backend (or the connection) is gone, and the job with it
        if not link.connected:
            _status(scene, f"Paused: backend disconnected ({len(self.shown)} tiles kept)")
            return True
        if self.tile_m is None:
            if self.request is None:
                self._submit(scene, 0, [])
            return True
        x, y = self._viewpoint(scene)
        want = plan.wanted(x, y, self.tile_m, self.rings)
        for coords in plan.evictions(self.shown, want, x, y, self.tile_m, self.rings.limit):
            self._remove(coords)
        if self.request is not None and not plan.still_wanted((self.request.lod, self.request.tiles), want):
            link.client.cancel_submitted(self.request.job_id)  # the view moved on: the backend stops between steps
            self.request = None
        if self.request is None and (nxt := plan.next_request(want, self.shown, self.rings.batch)) is not None:
            self._submit(scene, *nxt)
        self._show_status(scene, want)
        return True

    def _on_message(self, scene: bpy.types.Scene, msg: Message) -> None:
        request = self.request
        if msg.kind == "result":
            self.request = None
            meta = msg.content["meta"]
            self.tile_m = float(meta["tile_size_m"])
            try:
                for coords, heights in zip(request.tiles, msg.arrays["heights"]):
                    self._place(scene, coords, request.lod, heights)
            except ValueError as exc:  # e.g. non-finite heights: asking again would bring the same
                self.stop(f"tile not shown: {exc}")
        elif msg.kind == "error":
            self.request = None
            if msg.content["code"] not in (ErrorCode.CANCELLED.value, ErrorCode.SUPERSEDED.value):
                self.stop(f"{msg.content['code']}: {msg.content['message']}")

    def _submit(self, scene: bpy.types.Scene, lod: int, tiles: list[Coords]) -> None:
        params = {"world": self.world, "tiles": [list(t) for t in tiles], "lod": lod, "create": self.create}
        try:  # never waits: a refusal (e.g. a style the models lack) comes back as the job's error
            job_id = link.client.submit_nowait("world_tiles", params, TARGET)
        except BackendError as exc:  # no connection: retried next tick
            _status(scene, f"Paused: {exc}")
            return
        self.request = Request(job_id, lod, list(tiles), link.client)

    # -- tiles ---------------------------------------------------------------------------------
    def _place(self, scene: bpy.types.Scene, coords: Coords, lod: int, heights: np.ndarray) -> None:
        """Make or upgrade the tile's object, then redraw it and its neighbours (their shared samples)."""
        plan.tile_positions(heights, coords, self.tile_m)  # bad heights fail here, before bpy is touched
        if bpy.data.objects.get(self.names.get(coords, "")) is None:
            name = f"Tile {coords[0]},{coords[1]}"
            obj = bpy.data.objects.new(name, bpy.data.meshes.new(name))
            _collection(scene, self.world).objects.link(obj)
            self.names[coords] = obj.name
        self.heights[coords] = lod, heights
        self.shown[coords] = lod
        self._redraw(coords)
        self.arrivals.append((coords, lod, time.monotonic() - self.started))

    def _redraw(self, coords: Coords) -> None:
        """Rewrite the meshes of a tile that changed and of its shown neighbours."""
        for c in [coords, *plan.neighbours(coords)]:
            obj = bpy.data.objects.get(self.names.get(c, ""))
            if obj is None or c not in self.heights:
                continue
            xyz = plan.tile_positions(plan.shown_heights(self.heights, c), c, self.tile_m)
            mesh.write_grid(obj.data, xyz)
            obj[TILE_KEY] = [c[0], c[1], self.heights[c][0]]

    def _remove(self, coords: Coords) -> None:
        self._drop(coords)
        self._redraw(coords)  # the neighbours show their own samples again where this one's were

    def _drop(self, coords: Coords) -> None:
        obj = bpy.data.objects.get(self.names.pop(coords, ""))
        self.shown.pop(coords, None)
        self.heights.pop(coords, None)
        if obj is not None:
            _delete(obj)

    def _forget_deleted(self) -> None:
        """Tiles the artist deleted (or an undo removed) are asked for again."""
        for coords in [c for c, name in self.names.items() if bpy.data.objects.get(name) is None]:
            self._remove(coords)

    def _adopt(self, scene: bpy.types.Scene) -> None:
        """Tiles already in the scene from this world are kept; those of another world are removed."""
        collection = bpy.data.collections.get(COLLECTION)
        if collection is None:
            return
        same = collection.get(WORLD_KEY) == self.world
        for obj in list(collection.objects):
            tile = obj.get(TILE_KEY)
            if tile is None:
                continue
            coords, lod = (int(tile[0]), int(tile[1])), int(tile[2])
            if same and coords not in self.names and obj.type == "MESH":
                self.names[coords], self.shown[coords] = obj.name, lod
                self.heights[coords] = lod, _shown_z(obj)
            else:
                _delete(obj)

    def _viewpoint(self, scene: bpy.types.Scene) -> tuple[float, float]:
        if self.follow == "VIEW":
            view = _view_centre()
            if view is not None:
                return view
        if scene.camera is not None:
            location = scene.camera.matrix_world.translation
            return float(location.x), float(location.y)
        return 0.0, 0.0

    def _show_status(self, scene: bpy.types.Scene, want: list[tuple[Coords, int]]) -> None:
        missing = sum(self.shown.get(t, 99) > lod for t, lod in want)
        full = sum(lod == 0 for lod in self.shown.values())
        job = "" if self.request is None else f", loading {len(self.request.tiles)} at lod {self.request.lod}"
        _status(scene, f"Exploring: {len(self.shown)} tiles ({full} full detail), {missing} to come{job}")
        scene.worldsculpt.explore_progress = 1.0 - missing / max(1, len(want))  # the panel's bar

    # -- start / stop --------------------------------------------------------------------------
    def start(self, scene: bpy.types.Scene, world: str) -> None:
        s = scene.worldsculpt
        rings = plan.Rings(near=s.explore_near, far=s.explore_far, max_tiles=s.explore_max_tiles)
        self.stop()
        self.scene, self.world, self.create, self.rings, self.follow = (
            scene.name, world, s.world_create_params(), rings, s.explore_follow)
        self.tile_m, self.shown, self.heights, self.names, self.arrivals = None, {}, {}, {}, []
        self.started = time.monotonic()
        self._adopt(scene)
        _status(scene, "Exploring: opening the world...")
        if not bpy.app.timers.is_registered(link_module.tick):
            link_module.register()

    def stop(self, error: str = "") -> None:
        """End the mode; the tiles stay where they are."""
        if self.request is not None and link.client is self.request.client and link.connected:
            link.client.cancel_submitted(self.request.job_id)
        self.request = None
        scene = bpy.data.scenes.get(self.scene) if self.scene else None
        self.scene = None
        if scene is not None:
            _status(scene, f"Stopped: {error}" if error else f"Stopped ({len(self.shown)} tiles kept)")

    def remove_tiles(self) -> None:
        for coords in list(self.names):
            self._drop(coords)


explorer = Explorer()


def _status(scene: bpy.types.Scene, text: str) -> None:
    if scene.worldsculpt.explore_status != text:
        scene.worldsculpt.explore_status = text


def _delete(obj: bpy.types.Object) -> None:
    data = obj.data
    bpy.data.objects.remove(obj)
    if data is not None and data.users == 0:
        bpy.data.meshes.remove(data)


def _shown_z(obj: bpy.types.Object) -> np.ndarray:
    """The heights a tile object shows, read in bulk."""
    h, w = obj.data[mesh.SHAPE_KEY]
    xyz = np.empty(h * w * 3, dtype=np.float32)
    obj.data.attributes["position"].data.foreach_get("vector", xyz)
    return xyz.reshape(h, w, 3)[:, :, 2].copy()


def _collection(scene: bpy.types.Scene, world: str) -> bpy.types.Collection:
    collection = bpy.data.collections.get(COLLECTION)
    if collection is None:
        collection = bpy.data.collections.new(COLLECTION)
    if collection.name not in scene.collection.children:
        scene.collection.children.link(collection)
    collection[WORLD_KEY] = world
    return collection


def _view_centre() -> tuple[float, float] | None:
    """The first 3D viewport's view centre (what it orbits around), None without a window."""
    wm = bpy.context.window_manager
    for window in wm.windows if wm else ():
        for area in window.screen.areas:
            if area.type == "VIEW_3D":
                centre = area.spaces.active.region_3d.view_location
                return float(centre.x), float(centre.y)
    return None


def world_folder(context: bpy.types.Context) -> str:
    """The chosen world folder, else ``<blend>.world`` next to the saved .blend; ValueError if neither."""
    chosen = context.scene.worldsculpt.world_dir
    if chosen:
        return str(Path(bpy.path.abspath(chosen)).resolve())
    if not bpy.data.filepath:
        raise ValueError("save the .blend first (its world goes next to it) or choose a World folder")
    return str(plan.world_path_for_blend(bpy.data.filepath).resolve())


class WSC_OT_explore(bpy.types.Operator):
    """Stream the world's tiles around the viewpoint as it moves (near ones at full detail); returns at once"""

    bl_idname = "worldsculpt.explore"
    bl_label = "Explore"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return link.connected and not explorer.active

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            explorer.start(context.scene, world_folder(context))
        except ValueError as exc:
            context.scene.worldsculpt.explore_status = f"Not started: {exc}"
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        return {"FINISHED"}


class WSC_OT_explore_stop(bpy.types.Operator):
    """Stop exploring; the tiles stay in the scene unless asked to remove them"""

    bl_idname = "worldsculpt.explore_stop"
    bl_label = "Stop Exploring"

    remove_tiles: bpy.props.BoolProperty(name="Remove tiles", default=False)

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return explorer.active or bool(explorer.names)

    def execute(self, context: bpy.types.Context) -> set[str]:
        explorer.stop()
        if self.remove_tiles:
            explorer.remove_tiles()
            context.scene.worldsculpt.explore_status = "Stopped, tiles removed"
        return {"FINISHED"}


_classes = (WSC_OT_explore, WSC_OT_explore_stop)
_register_classes, _unregister_classes = bpy.utils.register_classes_factory(_classes)


def register() -> None:
    _register_classes()
    if explorer.update not in link_module.modes:
        link_module.modes.append(explorer.update)


def unregister() -> None:
    explorer.stop()
    if explorer.update in link_module.modes:
        link_module.modes.remove(explorer.update)
    _unregister_classes()
