"""Simulate: erode the whole terrain or its selection by a number of erosion steps, in the backend.

The operator snapshots the terrain, sends one ``simulate`` job (the heights, and the selected vertices as a
mask when only the selection erodes) through the link's stroke machinery and returns at once: each call's
heights stream into the mesh as a live preview, Cancel puts the snapshot back, and the result is written
with its masks (``ws_flow``, ``ws_deposition``, ``ws_wear`` point attributes) and one undo step.
"""

from __future__ import annotations

import bpy

from . import menus, mesh
from .brushes import _leave_edit_mode, _terrain, begin_stroke, can_edit
from .link import end_stroke, link
from .panels import _WorldsculptPanel
from .protocol.client import BackendError


class WSC_SimulateSettings(bpy.types.PropertyGroup):
    scope: bpy.props.EnumProperty(name="Erode", items=(
        ("ALL", "Whole terrain", "Erode the whole terrain"),
        ("SELECTION", "Selection", "Erode only the selected vertices (select them in Edit Mode first)")),
        default="ALL")
    steps: bpy.props.IntProperty(name="Amount", default=10, min=1, max=80,
                                 description="Erosion steps (10: one mature erosion stage)")
    engine: menus.enum("simulate_engine", name="Engine")
    engine_name: bpy.props.StringProperty(default="", options={"HIDDEN"})


def selection_mask(context: bpy.types.Context):
    """The selected vertices on the terrain's grid; ValueError when the selection is empty."""
    obj = _terrain(context)
    _leave_edit_mode(context, obj)
    mask = mesh.read_selection(obj)
    if not mask.any():
        raise ValueError("nothing selected: select part of the terrain in Edit Mode first")
    return mask


class WSC_OT_simulate(bpy.types.Operator):
    """Erode the terrain (or its selection) by the amount: previews stream in, Cancel restores it"""

    bl_idname = "worldsculpt.simulate"
    bl_label = "Simulate Erosion"
    bl_options = {"REGISTER"}  # not UNDO: the undo step is pushed when the result is applied

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return can_edit(context)

    def execute(self, context: bpy.types.Context) -> set[str]:
        sim = context.scene.worldsculpt_simulate
        try:
            mask = selection_mask(context) if sim.scope == "SELECTION" else None
        except ValueError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        stroke = begin_stroke(context, "simulate")
        params = {"cell_size": stroke.cell_size, "steps": sim.steps}
        if sim.engine_name:  # else the backend's default
            params["engine"] = sim.engine_name
        try:
            link.submit_brush(params, final=True, job="simulate", mask=mask)
        except BackendError as exc:
            end_stroke(error=str(exc))
            self.report({"ERROR"}, f"Simulate failed: {exc}")
            return {"CANCELLED"}
        context.scene.worldsculpt.brush_status = "Simulating..."
        return {"FINISHED"}


class WSC_OT_simulate_cancel(bpy.types.Operator):
    """Stop the simulation; the terrain goes back to how it was before it started"""

    bl_idname = "worldsculpt.simulate_cancel"
    bl_label = "Cancel Simulation"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return link.stroke is not None and link.stroke.kind == "simulate"

    def execute(self, context: bpy.types.Context) -> set[str]:
        end_stroke(status="Simulation cancelled")
        return {"FINISHED"}


class WSC_PT_simulate(_WorldsculptPanel, bpy.types.Panel):
    bl_label = "Simulate"

    def draw(self, context: bpy.types.Context) -> None:
        sim = context.scene.worldsculpt_simulate
        layout = self.layout
        layout.use_property_split = True
        col = layout.column()
        col.prop(sim, "scope")
        col.prop(sim, "steps")
        col.prop(sim, "engine")
        row = layout.row(align=True)
        if link.stroke is not None and link.stroke.kind == "simulate":
            row.label(text=context.scene.worldsculpt.brush_status)
            row.operator("worldsculpt.simulate_cancel", text="", icon="CANCEL")
        else:
            row.operator("worldsculpt.simulate", icon="MOD_FLUIDSIM")
        layout.label(text=context.scene.worldsculpt.brush_status)


_classes = (WSC_SimulateSettings, WSC_OT_simulate, WSC_OT_simulate_cancel, WSC_PT_simulate)


def register() -> None:
    for cls in _classes:
        bpy.utils.register_class(cls)
    bpy.types.Scene.worldsculpt_simulate = bpy.props.PointerProperty(type=WSC_SimulateSettings)


def unregister() -> None:
    del bpy.types.Scene.worldsculpt_simulate
    for cls in reversed(_classes):
        bpy.utils.unregister_class(cls)
