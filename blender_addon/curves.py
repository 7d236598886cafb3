"""Curve to Terrain: a curve object drawn over the terrain becomes a ridge, river or cliff.

The operator evaluates the curve through the depsgraph (its modifiers and resolution applied), maps
its world-space points onto the terrain grid as a brush stroke's are, and sends one ``curve`` job
through the link's stroke machinery: it returns at once, the link's timer writes the result window
into the mesh and pushes one undo step. The backend fills in the height along the curve with its 1D
profile model and shapes the band around it.
"""

from __future__ import annotations

import bpy
import numpy as np

from .brushes import _grid_points, _terrain, begin_stroke, can_edit
from .link import end_stroke, link
from .panels import _WorldsculptPanel
from .protocol.client import BackendError


def curve_points(obj: bpy.types.Object, depsgraph: bpy.types.Depsgraph) -> np.ndarray:
    """(N, 3) world-space points along the curve's one spline, in its direction (a closed one returns to
    its start). ValueError says why a curve cannot be used."""
    curve = obj.data
    if len(curve.splines) != 1:
        raise ValueError(f"{obj.name!r} has {len(curve.splines)} splines; Curve to Terrain takes exactly one")
    if curve.bevel_depth > 0 or curve.extrude > 0 or curve.bevel_mode == "OBJECT" and curve.bevel_object:
        raise ValueError(f"{obj.name!r} is bevelled or extruded: its evaluated mesh is a surface, not a line")
    evaluated = obj.evaluated_get(depsgraph)
    line = evaluated.to_mesh()
    try:
        local = np.empty(len(line.vertices) * 3, dtype=np.float32)
        line.vertices.foreach_get("co", local)
    finally:
        evaluated.to_mesh_clear()
    local = local.reshape(-1, 3).astype(np.float64)
    if len(local) < 2:
        raise ValueError(f"{obj.name!r} evaluates to {len(local)} point(s); it needs at least two")
    if curve.splines[0].use_cyclic_u:
        local = np.vstack([local, local[:1]])
    return (np.c_[local, np.ones(len(local))] @ np.array(evaluated.matrix_world).T)[:, :3]


class WSC_OT_curve_to_terrain(bpy.types.Operator):
    """Turn the chosen curve into a ridge, river or cliff on the terrain (the backend fills in its profile)"""

    bl_idname = "worldsculpt.curve_to_terrain"
    bl_label = "Curve to Terrain"
    bl_options = {"REGISTER"}  # not UNDO: the undo step is pushed when the result is applied

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        s = context.scene.worldsculpt
        return can_edit(context) and s.curve_object is not None

    def execute(self, context: bpy.types.Context) -> set[str]:
        s = context.scene.worldsculpt
        try:
            points = curve_points(s.curve_object, context.evaluated_depsgraph_get())
        except ValueError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        begin_stroke(context, f"curve {s.curve_kind}")
        stroke = link.stroke
        cells = _grid_points(_terrain(context), stroke.base.shape, stroke.cell_size, points, np.ones(len(points)))
        try:
            link.submit_brush(s.curve_params([c[:2] for c in cells], stroke.cell_size), final=True, job="curve")
        except BackendError as exc:
            end_stroke(error=str(exc))
            self.report({"ERROR"}, f"Curve to Terrain failed: {exc}")
            return {"CANCELLED"}
        s.brush_status = f"Shaping {s.curve_kind}..."
        return {"FINISHED"}


class WSC_PT_curve(_WorldsculptPanel, bpy.types.Panel):
    bl_label = "Curve Guides"
    bl_parent_id = "WSC_PT_brush"

    def draw(self, context: bpy.types.Context) -> None:
        s = context.scene.worldsculpt
        layout = self.layout
        layout.use_property_split = True
        col = layout.column()
        col.prop(s, "curve_object")
        col.prop(s, "curve_kind")
        col.prop(s, "curve_width")
        col.prop(s, "curve_strength", slider=True)
        if s.curve_kind == "cliff":
            col.prop(s, "curve_flip")
        layout.operator("worldsculpt.curve_to_terrain", icon="CURVE_BEZCURVE")


_classes = (WSC_OT_curve_to_terrain, WSC_PT_curve)


register, unregister = bpy.utils.register_classes_factory(_classes)
