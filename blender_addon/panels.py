"""The N-panel tab "Worldsculpt" in the 3D viewport. Panels only draw."""

from __future__ import annotations

import bpy

from .explore import explorer
from .local_backend import backend as local_backend
from .properties import SLIDERS


class _WorldsculptPanel:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Worldsculpt"


class WSC_PT_connection(_WorldsculptPanel, bpy.types.Panel):
    bl_label = "Connection"

    def draw(self, context: bpy.types.Context) -> None:
        s = context.scene.worldsculpt
        col = self.layout.column()
        col.label(text=s.status, icon="LINKED" if s.connected else "UNLINKED")
        if s.device:
            col.label(text=f"Device: {s.device}")
        row = col.row(align=True)
        if local_backend.running:
            row.operator("worldsculpt.stop_backend", icon="CANCEL")
        else:
            row.operator("worldsculpt.start_backend", icon="PLAY")
        row.operator("worldsculpt.connect", icon="FILE_REFRESH")


class WSC_PT_generate(_WorldsculptPanel, bpy.types.Panel):
    bl_label = "Generate"

    def draw(self, context: bpy.types.Context) -> None:
        s = context.scene.worldsculpt
        layout = self.layout
        layout.use_property_split = True
        col = layout.column()
        col.prop(s, "target")
        col.prop(s, "size_m")
        col.prop(s, "height_m")
        col.label(text=f"Relief with Elevation range {s.elevation_range:.2f}: {s.relief_m():.0f} m")
        col.prop(s, "resolution")
        if s.detail_note():
            col.label(text=s.detail_note(), icon="INFO")
        col.prop(s, "steps")
        col.prop(s, "quality")
        col.prop(s, "erosion_stage")
        col.prop(s, "generator")
        col.prop(s, "terrain_material")
        col.prop(s, "water_plane")
        row = layout.row(align=True)
        row.scale_y = 1.4
        if s.running:
            row.progress(factor=s.progress, text=s.status)
            row.operator("worldsculpt.cancel", text="", icon="CANCEL")
        else:
            row.operator("worldsculpt.generate", icon="WORLD")
        if s.last_error:
            box = layout.box()
            box.alert = True
            box.label(text=s.last_error, icon="ERROR")


class WSC_PT_style(_WorldsculptPanel, bpy.types.Panel):
    """The style generation, the brushes and restyling use: preset, mix, sliders, seed, guidance, a reference."""

    bl_label = "Style"

    def draw(self, context: bpy.types.Context) -> None:
        s = context.scene.worldsculpt
        layout = self.layout
        layout.use_property_split = True
        col = layout.column()
        col.prop(s, "style_preset")
        for item in s.style_weights:
            col.prop(item, "weight", text=item.name)
        for name in SLIDERS:
            col.prop(s, name, slider=True)
        col.prop(s, "seed")
        col.prop(s, "guidance")
        layout.operator("worldsculpt.randomise_style", icon="FILE_REFRESH")
        box = layout.box()
        box.label(text="Reference style", icon="EYEDROPPER")
        row = box.row(align=True)
        row.prop(s, "reference_object", text="")
        row.operator("worldsculpt.style_from_object", text="", icon="OBJECT_DATA")
        row = box.row(align=True)
        row.prop(s, "reference_file", text="")
        row.operator("worldsculpt.style_from_file", text="", icon="IMAGE_DATA")
        col = box.column()
        col.prop(s, "reference_cell_size")
        col.prop(s, "reference_height_m")
        if s.style_status:
            failed = s.style_status.startswith(("Reference failed", "Reference not used", "Reference lost"))
            box.label(text=s.style_status, icon="ERROR" if failed else "INFO")
        box = layout.box()
        box.label(text="Restyle a region", icon="SELECT_SET")
        col = box.column()
        terrain = bpy.data.objects.get(s.target)
        if terrain is not None and terrain.type == "MESH":
            col.prop_search(s, "restyle_group", terrain, "vertex_groups")
        col.prop(s, "restyle_blend")
        col.prop(s, "restyle_keep_forms")
        row = box.row()
        row.operator("worldsculpt.restyle_selection", icon="BRUSH_DATA")
        row.operator("worldsculpt.erode_selection", icon="MOD_FLUIDSIM")


class WSC_PT_brush(_WorldsculptPanel, bpy.types.Panel):
    bl_label = "Brush"

    def draw(self, context: bpy.types.Context) -> None:
        s = context.scene.worldsculpt
        layout = self.layout
        layout.use_property_split = True
        col = layout.column()
        col.prop(s, "brush_kind")
        if s.brush_kind == "style_paint":
            col.prop(s, "brush_style")
        col.prop(s, "brush_radius")
        col.prop(s, "brush_strength", slider=True)
        col.prop(s, "brush_falloff")
        col.prop(s, "brush_spacing", slider=True)
        col.prop(s, "brush_use_pressure")
        col.prop(s, "edit_log_dir")
        row = layout.row()
        row.scale_y = 1.4
        row.operator("worldsculpt.brush", icon="SCULPTMODE_HLT")
        if s.brush_status:
            layout.label(text=s.brush_status)


class WSC_PT_explore(_WorldsculptPanel, bpy.types.Panel):
    """Explore mode: the world folder, the rings streamed around the viewpoint, start / stop."""

    bl_label = "Explore"

    def draw(self, context: bpy.types.Context) -> None:
        s = context.scene.worldsculpt
        layout = self.layout
        layout.use_property_split = True
        col = layout.column()
        for name in ("world_dir", "explore_follow", "explore_near", "explore_far", "explore_max_tiles"):
            col.prop(s, name)
        row = layout.row()
        row.scale_y = 1.4
        if explorer.active:
            if s.explore_progress < 1.0:
                row.progress(factor=s.explore_progress, text=f"Tiles {s.explore_progress:.0%}")
            row.operator("worldsculpt.explore_stop", icon="PAUSE")
        else:
            row.operator("worldsculpt.explore", icon="WORLD_DATA")
        if s.explore_status:
            layout.label(text=s.explore_status, icon="ERROR" if s.explore_status.startswith(("Stopped:", "Not", "Paused"))
                         else "INFO")


class WSC_PT_export(_WorldsculptPanel, bpy.types.Panel):
    bl_label = "Export"
    bl_parent_id = "WSC_PT_generate"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        s = context.scene.worldsculpt
        layout = self.layout
        layout.use_property_split = True
        col = layout.column()
        col.prop(s, "export_dir")
        col.prop(s, "export_name")
        col.prop(s, "export_formats")
        col.prop(s, "export_preset")
        layout.operator("worldsculpt.export", icon="EXPORT")
        row = layout.row(align=True)
        row.prop(s, "export_blender_format", text="")
        row.operator("worldsculpt.export_blender", icon="BLENDER")
        if s.export_status:
            layout.label(text=s.export_status, icon="ERROR" if "failed" in s.export_status else "INFO")


_classes = (WSC_PT_connection, WSC_PT_generate, WSC_PT_style, WSC_PT_brush, WSC_PT_explore, WSC_PT_export)


register, unregister = bpy.utils.register_classes_factory(_classes)
