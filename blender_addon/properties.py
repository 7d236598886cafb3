"""The add-on's one property namespace, ``Scene.worldsculpt``: generation settings and live status."""

from __future__ import annotations

from typing import Any

import bpy

from . import live, menus
from .caves_settings import WSC_CaveSettings

# Styles the backend announced in its hello_reply; module-level so the enum's item strings stay
# alive (Blender keeps only pointers to the strings a dynamic-items callback returns).
_style_items: list[tuple[str, str, str]] = [("NONE", "(connect to list styles)", "")]


def set_styles(scene: bpy.types.Scene, styles: list[str]) -> None:
    """Adopt the backend's style list, keeping the weights the artist already set."""
    global _style_items
    _style_items = [(s, s.replace("_", " ").title(), f"Preset: only the {s} style") for s in styles] or \
        [("NONE", "(backend has no styles)", "")]
    weights = scene.worldsculpt.style_weights
    known = {w.name: w.weight for w in weights}
    weights.clear()
    for name in styles:
        item = weights.add()
        item.name = name
        item.weight = known.get(name, 0.0)
    if styles and not any(w.weight > 0 for w in weights):
        weights[0].weight = 1.0


MODEL_DETAIL_M = 30.0  # the shipped super-resolution model's cell size (models/terrain_superres.md)


def relief_share(elevation_range: float) -> float:
    """The share of Highest relief the learned generator makes (backend/generators/learned.py does the same)."""
    return 0.2 + 0.8 * elevation_range


def _styles(self: Any, context: bpy.types.Context | None) -> list[tuple[str, str, str]]:
    return _style_items


def _is_mesh(self: Any, obj: bpy.types.Object) -> bool:
    return obj.type == "MESH"


def _apply_preset(self: "WSC_Settings", context: bpy.types.Context) -> None:
    for item in self.style_weights:
        item.weight = 1.0 if item.name == self.style_preset else 0.0


SLIDERS = ("roughness", "erosion_strength", "elevation_range", "sea_level")


class WSC_StyleWeight(bpy.types.PropertyGroup):
    __slots__ = ()  # Blender 5 warns otherwise: values live in RNA, not on the Python object
    # `name` comes from PropertyGroup
    weight: bpy.props.FloatProperty(name="Weight", min=0.0, max=1.0, subtype="FACTOR",
                                    description="How much of this style goes into the mix")


class WSC_Settings(bpy.types.PropertyGroup):
    __slots__ = ()
    # -- what to generate
    target: bpy.props.StringProperty(name="Target", default="Worldsculpt Terrain",
                                     description="Mesh object that receives the terrain (created if missing)")
    resolution: bpy.props.IntProperty(name="Resolution", default=256, min=8, soft_max=2048, max=8192,
                                      description="Grid cells per side")
    size_m: bpy.props.FloatProperty(name="World size", default=2000.0, min=1.0, unit="LENGTH",
                                    description="Width of the world in metres")
    height_m: bpy.props.FloatProperty(name="Highest relief", default=400.0, min=0.1, unit="LENGTH",
                                      description="Lowest to highest point in metres at Elevation range 1; the "
                                                  "learned models' relief is this x (0.2 + 0.8 x Elevation range)")
    seed: bpy.props.IntProperty(name="Seed", default=0, min=0)
    style_preset: bpy.props.EnumProperty(name="Style", items=_styles, update=_apply_preset,
                                         description="Pick one style (sets the mixing weights)")
    style_weights: bpy.props.CollectionProperty(type=WSC_StyleWeight)
    roughness: bpy.props.FloatProperty(name="Roughness", default=0.5, min=0.0, max=1.0, subtype="FACTOR")
    erosion_strength: bpy.props.FloatProperty(name="Erosion", default=0.5, min=0.0, max=1.0, subtype="FACTOR")
    elevation_range: bpy.props.FloatProperty(name="Elevation range", default=0.5, min=0.0, max=1.0,
                                             subtype="FACTOR")
    sea_level: bpy.props.FloatProperty(name="Sea level", default=0.3, min=0.0, max=1.0, subtype="FACTOR")
    steps: bpy.props.IntProperty(name="Steps", default=0, min=0, max=1000,
                                 description="Sampler steps (0: the backend's default)")
    guidance: bpy.props.FloatProperty(name="Guidance", default=2.0, min=0.0, soft_max=10.0)
    generator: bpy.props.StringProperty(name="Generator", default="",
                                        description="Backend generator (empty: the backend's default, the "
                                                    "learned models when it has them)")
    quality: menus.enum("quality", name="Quality")
    quality_name: bpy.props.StringProperty(default="", options={"HIDDEN"})
    erosion_stage: menus.enum("erosion_stage", name="Erosion", description="Stream-power erosion after sampling (a new "
                             "explore world keeps the one it was made with)")
    erosion_stage_name: bpy.props.StringProperty(default="", options={"HIDDEN"})
    terrain_material: bpy.props.BoolProperty(
        name="Terrain material", default=True,
        description="Ask for slope, flow and surface masks (rock, scree, soil, grass, sand, snow) as ws_* vertex "
                    "attributes, and shade the terrain by them (an artist's own material is kept)")
    water_plane: bpy.props.BoolProperty(name="Water plane", default=False,
                                        description="A plane at sea level (0 m) over the terrain")
    # -- export
    export_dir: bpy.props.StringProperty(name="Folder", subtype="DIR_PATH", default="//terrain_export/",
                                         description="Folder the backend writes the exported files into")
    export_formats: menus.enum("export_format", name="Formats", description="Files the backend writes")
    export_format_names: bpy.props.StringProperty(default="", options={"HIDDEN"})
    export_preset: menus.enum("export_preset", name="Preset")
    export_preset_name: bpy.props.StringProperty(default="", options={"HIDDEN"})
    export_name: bpy.props.StringProperty(name="Name", default="terrain",
                                          description="File name stem: letters, digits, '_', '-', '.'")
    export_blender_format: bpy.props.EnumProperty(name="Blender format", items=(
        ("GLB", "glTF Binary (.glb)", "Blender's glTF exporter: +Y up, metres"),
        ("FBX", "FBX (.fbx)", "Blender's FBX exporter: -Z forward, Y up, 1 m = 1 unit")), default="GLB")
    export_status = live.field("export_status")
    # -- brushes
    brush_kind: menus.enum("brush_kind", name="Brush")
    brush_kind_name: bpy.props.StringProperty(default="", options={"HIDDEN"})
    brush_radius: bpy.props.FloatProperty(name="Radius", default=200.0, min=0.01, unit="LENGTH",
                                          description="Brush radius in metres on the terrain ([ and ] change it); "
                                                      "raise, lower, ridge and valley shape its inner half (the "
                                                      "ring inside the circle) and blend into the land over the rest")
    brush_strength: bpy.props.FloatProperty(name="Strength", default=0.5, min=0.0, max=1.0, subtype="FACTOR")
    brush_falloff: menus.enum("brush_falloff", name="Falloff")
    brush_falloff_name: bpy.props.StringProperty(default="", options={"HIDDEN"})
    brush_spacing: bpy.props.FloatProperty(name="Spacing", default=0.25, min=0.02, max=2.0, subtype="FACTOR",
                                           description="Distance between stroke points, as a fraction of the radius")
    brush_use_pressure: bpy.props.BoolProperty(name="Pressure", default=True,
                                               description="Tablet pressure scales the strength")
    brush_style: bpy.props.EnumProperty(name="Paint style", items=_styles,
                                        description="Style Paint: the style painted into the stroke")
    edit_log_dir: bpy.props.StringProperty(name="Edit log", subtype="DIR_PATH", default="",
                                           description="World folder whose edit log records every committed "
                                                       "stroke, curve guide and restyle (empty: none)")
    brush_status = live.field("brush_status")
    # -- curve guides
    curve_object: bpy.props.PointerProperty(name="Curve", type=bpy.types.Object,
                                            poll=lambda self, obj: obj.type == "CURVE",
                                            description="Curve object drawn over the terrain (seen from above)")
    curve_kind: menus.enum("curve_kind", name="Kind")
    curve_kind_name: bpy.props.StringProperty(default="", options={"HIDDEN"})
    curve_width: bpy.props.FloatProperty(name="Width", default=200.0, min=0.01, unit="LENGTH",
                                         description="Width of the band the curve reshapes, in metres")
    curve_strength: bpy.props.FloatProperty(name="Strength", default=0.5, min=0.0, max=1.0, subtype="FACTOR",
                                            description="Height of the ridge or step of the cliff, as a share "
                                                        "of a quarter of the terrain's relief; depth of the "
                                                        "river, as a share of a tenth of its width")
    curve_flip: bpy.props.BoolProperty(name="Flip side", default=False,
                                       description="Cliff: the high side is right of the curve's direction")
    # -- reference style and restyle
    reference_object: bpy.props.PointerProperty(name="Object", type=bpy.types.Object, poll=_is_mesh,
                                                description="Terrain object whose style to take")
    reference_file: bpy.props.StringProperty(name="File", subtype="FILE_PATH", default="",
                                             description="Heightmap (16-bit PNG, EXR, GeoTIFF, .npy) whose style to "
                                                         "take; the backend reads it")
    reference_cell_size: bpy.props.FloatProperty(name="Cell size", default=0.0, min=0.0, unit="LENGTH",
                                                 description="Metres per pixel of the file (0: the file states it, "
                                                             "as GeoTIFFs do)")
    reference_height_m: bpy.props.FloatProperty(name="Relief", default=0.0, min=0.0, unit="LENGTH",
                                                description="Metres from the file's lowest to its highest value (0: its "
                                                            "values are metres already)")
    style_status = live.field("style_status")
    restyle_keep_forms: bpy.props.BoolProperty(name="Keep large forms", default=False,
                                               description="Repaint the texture only (style paint) instead of new "
                                                           "terrain (regenerate)")
    restyle_group: bpy.props.StringProperty(name="Vertex group", default="",
                                            description="Restyle this vertex group (empty: the selected vertices)")
    restyle_blend: bpy.props.FloatProperty(name="Blend", default=100.0, min=0.01, unit="LENGTH",
                                           description="Distance in from the region's rim over which the new "
                                                       "terrain fades in")
    # -- explore
    caves: bpy.props.PointerProperty(type=WSC_CaveSettings)  # the Caves panel (caves_settings.py)
    world_dir: bpy.props.StringProperty(name="World folder", subtype="DIR_PATH", default="",
                                        description="The world explore mode streams and stores its tiles in "
                                                    "(empty: <blend name>.world next to the saved .blend)")
    explore_near: bpy.props.IntProperty(name="Full-detail rings", default=1, min=0, max=8,
                                        description="Rings of tiles around the viewpoint's tile at full detail")
    explore_far: bpy.props.IntProperty(name="Visible rings", default=2, min=0, max=8,
                                       description="Rings of tiles shown at all (beyond the full-detail ones: coarse)")
    explore_max_tiles: bpy.props.IntProperty(name="Max tiles", default=0, min=0, max=2000,
                                             description="Tile objects kept at most, farthest dropped first "
                                                         "(0: one ring beyond the visible ones; never fewer than those)")
    explore_follow: bpy.props.EnumProperty(name="Follow", items=(
        ("VIEW", "Viewport", "The 3D viewport's view centre (the scene camera when there is no viewport)"),
        ("CAMERA", "Scene camera", "The active scene camera's position")), default="VIEW")
    explore_status = live.field("explore_status")
    explore_progress = live.field("explore_progress")  # share of the wanted tiles shown at their level
    # -- live status (written by the link's timer): in memory, so undo and saved files leave it alone
    connected = live.field("connected")
    status = live.field("status")
    device = live.field("device")
    progress = live.field("progress")
    running = live.field("running")
    last_error = live.field("last_error")

    def generate_params(self) -> dict[str, Any]:
        """The `generate` job's params, as the backend's job contract names them."""
        weights = self.style_mix()
        params: dict[str, Any] = {
            "sliders": {name: getattr(self, name) for name in SLIDERS},
            "seed": self.seed, "resolution": self.resolution, "size_m": self.size_m,
            "height_m": self.height_m, "steps": self.steps or None, "guidance": self.guidance,
            "masks": self.terrain_material,
        }
        for key, chosen in (("quality", self.quality_name), ("erosion_stage", self.erosion_stage_name)):
            if chosen:  # else the backend's default
                params[key] = chosen
        if self.generator:
            params["generator"] = self.generator
        if weights:
            params["style_weights"] = weights
        return params

    def world_create_params(self) -> dict[str, Any]:
        """The `world_tiles` job's `create` settings: the style panel's, used only by a new world."""
        keys = ("seed", "style_weights", "sliders", "guidance", "height_m", "quality", "steps", "erosion_stage")
        return {key: value for key, value in self.generate_params().items() if key in keys}

    def style_mix(self) -> dict[str, float]:
        return {w.name: round(w.weight, 6) for w in self.style_weights if w.weight > 0}

    def _edit_params(self, kind: str, cell_size: float, style_weights: dict[str, float]) -> dict[str, Any]:
        """What every `brush` job sends: kind, grid, the panel's style, and the world that logs it."""
        params: dict[str, Any] = {
            "kind": kind, "cell_size": float(cell_size), "sliders": {name: getattr(self, name) for name in SLIDERS},
            "seed": self.seed, "guidance": self.guidance,
        }
        if style_weights:
            params["style_weights"] = style_weights
        if self.edit_log_dir:
            params["world"] = bpy.path.abspath(self.edit_log_dir)
        return params

    def brush_params(self, stroke: list[list[float]], cell_size: float, commit: bool) -> dict[str, Any]:
        """The `brush` job's params for a stroke of [row, col, pressure] grid points (heights travel as an array)."""
        painted = self.brush_kind == "style_paint" and self.brush_style != "NONE"
        params = self._edit_params(self.brush_kind, cell_size, {self.brush_style: 1.0} if painted else self.style_mix())
        params.update(stroke=stroke, radius=max(0.5, self.brush_radius / cell_size), strength=self.brush_strength,
                      falloff=self.brush_falloff, commit=commit)
        return params

    def curve_params(self, curve: list[list[float]], cell_size: float) -> dict[str, Any]:
        """The `curve` job's params for a polyline of [row, col] grid points (heights travel as an array)."""
        params = self._edit_params(self.curve_kind, cell_size, self.style_mix())
        params.update(curve=curve, width=max(1.0, self.curve_width / cell_size), strength=self.curve_strength,
                      flip=self.curve_flip, commit=True)
        return params

    def region_params(self, cell_size: float, kind: str) -> dict[str, Any]:
        """The `brush` job's params for editing a region (restyle: regenerate or style_paint in the current
        style; erode) with the mask travelling as an array."""
        params = self._edit_params(kind, cell_size, self.style_mix())
        params.update(edge=min(64.0, max(1.0, self.restyle_blend / cell_size)), strength=1.0, commit=True)
        return params

    def style_from_file_params(self) -> dict[str, Any]:
        """The `style_from` job's params for the reference file (the backend reads it)."""
        return {"path": bpy.path.abspath(self.reference_file), "cell_size": self.reference_cell_size or None,
                "height_m": self.reference_height_m or None}

    def adopt_style(self, estimate: dict[str, Any]) -> str:
        """Fill weights and sliders from a `style_from` result, and the height range so that Generate
        reproduces the reference's relief; returns what was done, for the panel."""
        known = {w.name for w in self.style_weights}
        weights = {k: v for k, v in estimate["style_weights"].items() if k in known}
        total = sum(weights.values())
        if total <= 0:
            raise ValueError(f"the reference's styles {sorted(estimate['style_weights'])} are not among the "
                             f"backend's {sorted(known)}")
        for item in self.style_weights:
            item.weight = weights.get(item.name, 0.0) / total
        for name in SLIDERS:
            if name in estimate["sliders"]:
                setattr(self, name, float(estimate["sliders"][name]))
        self.height_m = max(0.1, float(estimate["relief_m"]) / relief_share(self.elevation_range))
        top = max(weights, key=weights.get)
        return f"Reference: {top.replace('_', ' ')} {weights[top] / total:.0%}, relief {estimate['relief_m']:.0f} m"

    def export_params(self, cell_size: float) -> dict[str, Any]:
        """The `export` job's params (the heights travel as an array)."""
        formats = [key for key in menus.choices("export_format") if key in self.export_formats]  # stable order
        return {"out_dir": bpy.path.abspath(self.export_dir), "formats": formats, "name": self.export_name,
                "cell_size": float(cell_size), "preset": self.export_preset_name or None,
                "byte_order": "little"}


    def relief_m(self) -> float:
        """The relief Generate makes with the learned models: Highest relief scaled by Elevation range."""
        return self.height_m * relief_share(self.elevation_range)

    def detail_note(self) -> str:
        """Say so when the grid is finer than the models' detail: more resolution then adds no detail."""
        cell = self.size_m / max(1, self.resolution - 1)
        if cell >= MODEL_DETAIL_M:
            return ""
        return f"Cells of {cell:.1f} m: finer than the models' {MODEL_DETAIL_M:.0f} m detail (smooth in between)"


_classes = (WSC_StyleWeight, WSC_CaveSettings, WSC_Settings)


def register() -> None:
    for cls in _classes:
        bpy.utils.register_class(cls)
    bpy.types.Scene.worldsculpt = bpy.props.PointerProperty(type=WSC_Settings)


def unregister() -> None:
    live.clear()
    del bpy.types.Scene.worldsculpt
    for cls in reversed(_classes):
        bpy.utils.unregister_class(cls)
