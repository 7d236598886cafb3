"""The choices the add-on's menus offer, as the backend declares them (hello_reply's ``menus``).

Each menu is its choices in order, [name, label, note] each, and the default a new scene starts with (a list
for a menu of several choices at once). A new choice (a brush kind, a curve kind, an export format, an erosion
stage, ...) is declared beside the code that does it and appears in Blender from there. Beside the menus, the
hello carries the share of its circle each displacing brush shapes, which the add-on draws inside the brush circle.
"""

from __future__ import annotations

from typing import Any

from backend.data.elevation_profiles import KIND_NOTES as CURVE_KIND_NOTES
from backend.editing.brushes import DISPLACE, FALLOFF_NOTES, KIND_NOTES as BRUSH_KIND_NOTES, SHAPE_SHARE
from backend.editing.voxel_brushes import FILL_NOTES
from backend.export import FORMAT_NOTES, PRESET_NOTES
from backend.generators import GenerateRequest
from backend.generators.base import QUALITY_NOTES
from backend.generators.voxel_region import DEFAULT_SOURCE, MESH_STYLE_NOTES, SOURCE_NOTES
from backend.simulation.landscape import EROSION_STAGE_NOTES
from backend.simulation.surrogate_stage import ENGINE_NOTES
from backend.voxels.chunk import COVER_NOTES, VOXEL_SIZE_NOTES

DEFAULT_EXPORT_FORMATS = ["png16", "glb"]  # a heightmap for engines and a mesh for DCC tools


def _menu(notes: dict[str, tuple[str, str]], default: str | list[str]) -> dict[str, Any]:
    return {"choices": [[name, label, note] for name, (label, note) in notes.items()], "default": default}


def menus() -> dict[str, dict[str, Any]]:
    return {"quality": _menu(QUALITY_NOTES, GenerateRequest.quality),
            "erosion_stage": _menu(EROSION_STAGE_NOTES, GenerateRequest.erosion_stage),
            "brush_falloff": _menu(FALLOFF_NOTES, next(iter(FALLOFF_NOTES))),
            "brush_kind": _menu(BRUSH_KIND_NOTES, next(iter(BRUSH_KIND_NOTES))),
            "curve_kind": _menu(CURVE_KIND_NOTES, next(iter(CURVE_KIND_NOTES))),
            "export_format": _menu(FORMAT_NOTES, DEFAULT_EXPORT_FORMATS),
            "export_preset": _menu(PRESET_NOTES, "none"),
            "simulate_engine": _menu(ENGINE_NOTES, "auto"),
            "voxel_size": _menu(VOXEL_SIZE_NOTES, "2"),
            "voxel_mesh": _menu(MESH_STYLE_NOTES, "smooth"),
            "voxel_source": _menu(SOURCE_NOTES, DEFAULT_SOURCE),
            "ground_cover": _menu(COVER_NOTES, "grass"),
            "fill_material": _menu(FILL_NOTES, "rock")}


def brush_shape_share() -> dict[str, float]:
    """Brush kind -> the share of its circle it shapes (the rest blends the shape in): the add-on draws that ring
    inside the brush circle, so the artist sees where the shape goes."""
    return {kind: SHAPE_SHARE for kind in DISPLACE}
