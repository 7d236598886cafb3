"""Reference style operators: take the style of a terrain object or a heightmap file into the Style panel.

Each sends a ``style_from`` job and returns; the link's timer fills the panel's weights, sliders and height
range when the backend answers (one undo step), or says why it could not in the panel's style status.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bpy

from . import link as link_module
from . import mesh
from .link import link
from .protocol.client import BackendError


def _submit(operator: bpy.types.Operator, context: bpy.types.Context, params: dict[str, Any],
            arrays: dict[str, Any], source: str) -> set[str]:
    settings = context.scene.worldsculpt
    try:
        link.submit_style(params, arrays, context.scene.name)
    except BackendError as exc:
        settings.style_status = f"Reference failed: {exc}"
        operator.report({"ERROR"}, settings.style_status)
        return {"CANCELLED"}
    settings.style_status = f"Measuring the style of {source}..."
    link_module.wake()
    return {"FINISHED"}


class WSC_OT_style_from_object(bpy.types.Operator):
    """Set the style mix, sliders and height range to those of the reference terrain object"""

    bl_idname = "worldsculpt.style_from_object"
    bl_label = "From Object"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return link.connected and context.scene.worldsculpt.reference_object is not None

    def execute(self, context: bpy.types.Context) -> set[str]:
        obj = context.scene.worldsculpt.reference_object
        try:
            if obj.mode == "EDIT":
                raise ValueError(f"{obj.name!r} is in Edit Mode: leave it to read its heights")
            heights, cell_size = mesh.read_heights(obj)
        except ValueError as exc:
            context.scene.worldsculpt.style_status = f"Reference failed: {exc}"
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        return _submit(self, context, {"cell_size": cell_size}, {"heights": heights}, repr(obj.name))


class WSC_OT_style_from_file(bpy.types.Operator):
    """Set the style mix, sliders and height range to those of a heightmap file (16-bit PNG, EXR, GeoTIFF, .npy)"""

    bl_idname = "worldsculpt.style_from_file"
    bl_label = "From File"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return link.connected and bool(context.scene.worldsculpt.reference_file)

    def execute(self, context: bpy.types.Context) -> set[str]:
        params = context.scene.worldsculpt.style_from_file_params()
        return _submit(self, context, params, {}, Path(params["path"]).name)


_classes = (WSC_OT_style_from_object, WSC_OT_style_from_file)


register, unregister = bpy.utils.register_classes_factory(_classes)
