"""The brush operator: sculpt the terrain with the backend's guided diffusion, stroke by stroke.

Like Blender's own paint operators it has a ``stroke`` collection of points: ``execute`` sends a given
stroke at once (scripts, tests, redo), ``invoke`` runs the interactive modal version with a circle
cursor on the terrain. Every job of a stroke carries all its points so far on the terrain as it was when
the stroke began; results arrive through the link's timer, which writes only the stroke's window into
the mesh and pushes one undo step when the stroke's final job is applied.
"""

from __future__ import annotations

import math
from typing import Any

import bpy
import numpy as np
from bpy_extras import view3d_utils

from . import grid, mesh
from . import link as link_module
from .link import Stroke, end_stroke, link
from .protocol.client import BackendError

CIRCLE_SEGMENTS = 48


def _terrain(context: bpy.types.Context) -> bpy.types.Object | None:
    obj = bpy.data.objects.get(context.scene.worldsculpt.target)
    return obj if obj is not None and obj.type == "MESH" and mesh.SHAPE_KEY in obj.data else None


def _grid_points(obj: bpy.types.Object, shape: tuple[int, int], cell_size: float,
                 locations: np.ndarray, pressures: np.ndarray) -> list[list[float]]:
    """World-space locations (N, 3) -> [[row, col, pressure], ...] on the terrain grid, clamped onto it."""
    inverse = np.array(obj.matrix_world.inverted())
    local = (np.c_[locations, np.ones(len(locations))] @ inverse.T)[:, :3]
    rows, cols = grid.to_cells(local[:, 0], local[:, 1], shape, cell_size)
    rows, cols = np.clip(rows, 0, shape[0] - 1), np.clip(cols, 0, shape[1] - 1)
    return [[float(r), float(c), float(p)] for r, c, p in zip(rows, cols, np.clip(pressures, 0, 1))]


def can_edit(context: bpy.types.Context) -> bool:
    """An edit (stroke, restyle, curve) can start: connected, no other edit in flight, a terrain to work on."""
    return link.connected and link.stroke is None and _terrain(context) is not None


def begin_stroke(context: bpy.types.Context, kind: str) -> Stroke:
    """Snapshot the terrain an edit (a stroke, a restyle, a curve) starts from; its results are written over it."""
    settings = context.scene.worldsculpt
    heights, cell_size = mesh.read_heights(_terrain(context))
    link.stroke = Stroke(settings.target, context.scene.name, kind, heights, cell_size)
    link_module.wake()
    return link.stroke


class WSC_OT_brush(bpy.types.Operator):
    """Sculpt the terrain: the backend turns each stroke into natural terrain in place (Esc or right-click ends)"""

    bl_idname = "worldsculpt.brush"
    bl_label = "Sculpt Terrain"
    bl_options = {"REGISTER"}  # not UNDO: the undo step is pushed when the stroke's result is applied

    stroke: bpy.props.CollectionProperty(type=bpy.types.OperatorStrokeElement, options={"SKIP_SAVE"})

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return can_edit(context)

    # -- non-interactive: the given stroke ------------------------------------------------------
    def execute(self, context: bpy.types.Context) -> set[str]:
        if not len(self.stroke):
            self.report({"ERROR"}, "the stroke has no points")
            return {"CANCELLED"}
        locations = np.array([p.location for p in self.stroke], dtype=np.float64)
        pressures = np.array([p.pressure for p in self.stroke], dtype=np.float64)
        begin_stroke(context, context.scene.worldsculpt.brush_kind)
        return {"FINISHED"} if self._send(context, locations, pressures, final=True) else {"CANCELLED"}

    def _send(self, context: bpy.types.Context, locations: np.ndarray, pressures: np.ndarray, final: bool) -> bool:
        settings, stroke = context.scene.worldsculpt, link.stroke
        points = _grid_points(_terrain(context), stroke.base.shape, stroke.cell_size, locations, pressures)
        try:
            link.submit_brush(settings.brush_params(points, stroke.cell_size, commit=final), final)
        except BackendError as exc:
            end_stroke(error=str(exc))
            self.report({"ERROR"}, f"Brush failed: {exc}")
            return False
        settings.brush_status = "Sculpting..." if not final else "Applying stroke..."
        return True

    # -- interactive: the modal stroke ----------------------------------------------------------
    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if context.area is None or context.area.type != "VIEW_3D":
            self.report({"ERROR"}, "Sculpt Terrain runs in the 3D Viewport")
            return {"CANCELLED"}
        self.cursor: np.ndarray | None = None  # world location under the mouse, on the terrain
        self.points: list[np.ndarray] = []
        self.pressures: list[float] = []
        self._handler = bpy.types.SpaceView3D.draw_handler_add(self._draw, (context,), "WINDOW", "POST_VIEW")
        context.window_manager.modal_handler_add(self)
        context.workspace.status_text_set("LMB: stroke   [ ]: radius   Esc/RMB: stop")
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        settings = context.scene.worldsculpt
        if event.type in {"MOUSEMOVE", "INBETWEEN_MOUSEMOVE"}:
            self.cursor = self._raycast(context, event)
            if self.points and self.cursor is not None:
                self._extend(context, event)
            context.area.tag_redraw()
        elif event.type == "LEFTMOUSE" and event.value == "PRESS" and self.cursor is not None:
            if link.stroke is None and link.connected and _terrain(context) is not None:
                begin_stroke(context, settings.brush_kind)
                self._add(context, event, final=False)
            elif link.stroke is not None:  # the last stroke's result is not in yet: it starts from that
                settings.brush_status = "Wait: the last stroke is still being applied"
        elif event.type == "LEFTMOUSE" and event.value == "RELEASE" and self.points:
            self._send(context, np.array(self.points), np.array(self.pressures), final=True)
            self._remember()
            self.points, self.pressures = [], []
        elif event.type in {"LEFT_BRACKET", "RIGHT_BRACKET"} and event.value == "PRESS":
            settings.brush_radius *= 1.1 if event.type == "RIGHT_BRACKET" else 1 / 1.1
            context.area.tag_redraw()
        elif event.type in {"ESC", "RIGHTMOUSE"} and event.value == "PRESS":
            if self.points:
                end_stroke(status="Stroke cancelled")
                self.points, self.pressures = [], []
                return {"RUNNING_MODAL"}
            self._finish(context)
            return {"FINISHED"}
        else:
            return {"PASS_THROUGH"}  # navigation, panels, shortcuts
        return {"RUNNING_MODAL"}

    def _pressure(self, context: bpy.types.Context, event: bpy.types.Event) -> float:
        use = context.scene.worldsculpt.brush_use_pressure
        pressure = float(getattr(event, "pressure", 1.0))
        return pressure if use and pressure > 0 else 1.0

    def _add(self, context: bpy.types.Context, event: bpy.types.Event, final: bool) -> None:
        self.points.append(self.cursor.copy())
        self.pressures.append(self._pressure(context, event))
        self._send(context, np.array(self.points), np.array(self.pressures), final)

    def _extend(self, context: bpy.types.Context, event: bpy.types.Event) -> None:
        """Add a point once the cursor is a spacing away from the last one (newer jobs supersede queued ones)."""
        settings = context.scene.worldsculpt
        if np.linalg.norm(self.cursor - self.points[-1]) >= settings.brush_spacing * settings.brush_radius:
            self._add(context, event, final=False)

    def _remember(self) -> None:
        """Keep the last stroke in the operator's ``stroke`` property, as paint operators do (redo, macros)."""
        self.stroke.clear()
        for i, (location, pressure) in enumerate(zip(self.points, self.pressures)):
            item = self.stroke.add()
            item.location, item.pressure, item.is_start = location.tolist(), pressure, i == 0

    def _raycast(self, context: bpy.types.Context, event: bpy.types.Event) -> np.ndarray | None:
        obj = _terrain(context)
        if obj is None or context.region_data is None:
            return None
        coord = (event.mouse_region_x, event.mouse_region_y)
        origin = view3d_utils.region_2d_to_origin_3d(context.region, context.region_data, coord)
        direction = view3d_utils.region_2d_to_vector_3d(context.region, context.region_data, coord)
        inverse = obj.matrix_world.inverted()
        hit, location, _, _ = obj.ray_cast(inverse @ origin, inverse.to_3x3() @ direction)
        return np.array(obj.matrix_world @ location) if hit else None

    def _draw(self, context: bpy.types.Context) -> None:
        """The brush circle on the terrain (a horizontal ring at the cursor, radius in metres)."""
        import gpu
        from gpu_extras.batch import batch_for_shader

        if self.cursor is None:
            return
        settings = context.scene.worldsculpt
        angles = np.linspace(0, 2 * math.pi, CIRCLE_SEGMENTS, endpoint=False)
        shader = gpu.shader.from_builtin("UNIFORM_COLOR")
        colour = (1.0, 0.6, 0.1, 0.9) if link.stroke is None else (1.0, 0.2, 0.1, 1.0)
        for r, width, alpha in zip(cursor_radii(settings.brush_kind, settings.brush_radius), (2.0, 1.0), (1.0, 0.6)):
            ring = [(self.cursor[0] + r * math.cos(a), self.cursor[1] + r * math.sin(a), self.cursor[2])
                    for a in angles]
            batch = batch_for_shader(shader, "LINE_LOOP", {"pos": ring})
            shader.uniform_float("color", (*colour[:3], colour[3] * alpha))
            gpu.state.line_width_set(width)
            batch.draw(shader)
        gpu.state.line_width_set(1.0)

    def _finish(self, context: bpy.types.Context) -> None:
        bpy.types.SpaceView3D.draw_handler_remove(self._handler, "WINDOW")
        context.workspace.status_text_set(None)
        context.area.tag_redraw()

    def cancel(self, context: bpy.types.Context) -> None:
        self._finish(context)


def cursor_radii(kind: str, radius: float) -> list[float]:
    """The brush circle's radius, then (for a kind that shapes only part of its circle: raise, lower, ridge, valley)
    the ring its shape fills, as the backend's hello says (``brush_shape_share``); the rest blends it in."""
    share = (link.hello or {}).get("brush_shape_share", {}).get(kind)
    return [radius] if share is None else [radius, share * radius]


def _leave_edit_mode(context: bpy.types.Context, obj: bpy.types.Object) -> None:
    """Edit Mode keeps the selection (and heights) in the edit mesh; Object Mode writes them into the mesh."""
    if obj.mode == "EDIT":
        with context.temp_override(active_object=obj, object=obj):
            bpy.ops.object.mode_set(mode="OBJECT")


def _group_region(context: bpy.types.Context, obj: bpy.types.Object, name: str) -> np.ndarray:
    """(H, W) float32: 1 on the vertices of vertex group ``name``, 0 elsewhere; the selection is kept.

    Blender reads group weights one vertex at a time only, so the group is selected by Blender's own
    operator and the selection read in bulk (membership, not weight).
    """
    group = obj.vertex_groups.get(name)
    if group is None:
        raise ValueError(f"{obj.name!r} has no vertex group {name!r}")
    elements = (obj.data.vertices, obj.data.edges, obj.data.polygons)
    kept = [np.zeros(len(e), dtype=bool) for e in elements]
    for element, selected in zip(elements, kept):
        element.foreach_get("select", selected)
    obj.vertex_groups.active_index = group.index
    with context.temp_override(active_object=obj, object=obj):
        bpy.ops.object.mode_set(mode="EDIT")
        bpy.ops.mesh.select_all(action="DESELECT")
        bpy.ops.object.vertex_group_select()
        bpy.ops.object.mode_set(mode="OBJECT")
    region = mesh.read_selection(obj)
    for element, selected in zip(elements, kept):
        element.foreach_set("select", selected)
    return region


class _RegionEdit:
    """An edit of the selected vertices (or a vertex group): one `brush` job with the region as its mask.
    A mixin, not an operator: Blender registers each operator class once, so the two share no base operator."""

    bl_options = {"REGISTER"}  # not UNDO: the undo step is pushed when the result is applied
    action = ""  # the operator's verb; each operator's kind(settings) names the brush kind it sends

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return can_edit(context)

    def execute(self, context: bpy.types.Context) -> set[str]:
        settings, obj = context.scene.worldsculpt, _terrain(context)
        try:
            _leave_edit_mode(context, obj)
            region = _group_region(context, obj, settings.restyle_group) if settings.restyle_group \
                else mesh.read_selection(obj)
            if not region.any():
                raise ValueError("nothing selected: select part of the terrain in Edit Mode (or name a vertex group)")
            stroke = begin_stroke(context, self.action.lower())
            params = settings.region_params(stroke.cell_size, self.kind(settings))  # type: ignore[attr-defined]
            link.submit_brush(params, final=True, mask=region)
        except (ValueError, RuntimeError, BackendError) as exc:
            if link.stroke is not None:  # submitting failed: the snapshot goes back, nothing was changed
                end_stroke(error=str(exc))
            settings.brush_status = f"{self.action} failed: {exc}"
            self.report({"ERROR"}, settings.brush_status)
            return {"CANCELLED"}
        settings.brush_status = f"{self.action.rstrip('e')}ing..."
        return {"FINISHED"}


class WSC_OT_restyle_selection(_RegionEdit, bpy.types.Operator):
    """Regenerate the terrain's selected vertices (or a vertex group) in the current style; the rest stays exactly as it is"""

    bl_idname = "worldsculpt.restyle_selection"
    bl_label = "Restyle Selection"
    action = "Restyle"

    def kind(self, settings: Any) -> str:
        return "style_paint" if settings.restyle_keep_forms else "regenerate"


class WSC_OT_erode_selection(_RegionEdit, bpy.types.Operator):
    """Wear the selected vertices (or a vertex group) with the erosion stage; the rest stays exactly as it is"""

    bl_idname = "worldsculpt.erode_selection"
    bl_label = "Erode Selection"
    action = "Erode"

    def kind(self, settings: Any) -> str:
        return "erode"


class WSC_OT_randomise_style(bpy.types.Operator):
    """Pick a random style mix, sliders and seed"""

    bl_idname = "worldsculpt.randomise_style"
    bl_label = "Randomise"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        from .properties import SLIDERS

        s = context.scene.worldsculpt
        rng = np.random.default_rng()
        weights = rng.dirichlet(np.full(max(1, len(s.style_weights)), 0.5))
        for item, w in zip(s.style_weights, weights):
            item.weight = float(w)
        for name in SLIDERS:
            setattr(s, name, float(rng.uniform(0.1, 0.9)))
        s.seed = int(rng.integers(0, 2**31 - 1))
        return {"FINISHED"}


_classes = (WSC_OT_brush, WSC_OT_restyle_selection, WSC_OT_erode_selection, WSC_OT_randomise_style)


register, unregister = bpy.utils.register_classes_factory(_classes)
