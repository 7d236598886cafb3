"""Menus whose choices the backend declares (hello_reply's ``menus``): sampling quality, erosion stages, brush
kinds and falloffs, curve kinds, export formats and size presets, simulation engines, and the Caves panel's voxel
sizes, mesh styles, chunk sources, ground covers and fill materials. The add-on keeps no list of its own, so a
choice the backend adds shows up here.

Each menu is an enum whose items come from the last hello; the artist's choice is stored by name in a string
property beside it (an enum stores an index, which would point elsewhere once the list changes), so a saved
file keeps its choice and a choice the backend no longer offers falls back to the backend's default.
"""

from __future__ import annotations

from functools import reduce
from typing import Any

import bpy

Item = tuple[str, str, str, int]  # identifier, label, description, number

# menu -> (the scene's settings group, dotted, its property storing the choice by name, several at once?)
MENUS: dict[str, tuple[str, str, bool]] = {
    "quality": ("worldsculpt", "quality_name", False),
    "brush_falloff": ("worldsculpt", "brush_falloff_name", False),
    "erosion_stage": ("worldsculpt", "erosion_stage_name", False),
    "brush_kind": ("worldsculpt", "brush_kind_name", False),
    "curve_kind": ("worldsculpt", "curve_kind_name", False),
    "export_format": ("worldsculpt", "export_format_names", True),
    "export_preset": ("worldsculpt", "export_preset_name", False),
    "simulate_engine": ("worldsculpt_simulate", "engine_name", False),
    "voxel_size": ("worldsculpt.caves", "voxel_size_name", False),
    "voxel_mesh": ("worldsculpt.caves", "mesh_style_name", False),
    "voxel_source": ("worldsculpt.caves", "source_name", False),
    "ground_cover": ("worldsculpt.caves", "cover_name", False),
    "fill_material": ("worldsculpt.caves", "fill_material_name", False),
}
_UNLISTED: list[Item] = [("NONE", "(connect to the backend to list these)", "", 0)]
# kept alive at module level: Blender keeps only pointers to the strings a dynamic-items callback returns
_items: dict[str, list[Item]] = {menu: _UNLISTED for menu in MENUS}


def set_menus(scene: Any, menus: dict[str, Any] | None) -> None:
    """Adopt the backend's menus; a stored choice it does not list becomes the menu's default."""
    for menu, (group, stored, several) in MENUS.items():
        offered = (menus or {}).get(menu)
        if not offered:
            _items[menu] = _UNLISTED
            continue
        _items[menu] = [(str(name), str(label), str(note), 1 << i if several else i)
                        for i, (name, label, note) in enumerate(offered["choices"])]
        names = [item[0] for item in _items[menu]]
        settings, default = reduce(getattr, group.split("."), scene), offered["default"]
        if several:
            kept = [name for name in getattr(settings, stored).split(",") if name in names]
            setattr(settings, stored, ",".join(kept or [str(name) for name in default]))
        elif getattr(settings, stored) not in names:
            setattr(settings, stored, str(default))


def choices(menu: str) -> list[str]:
    """The names the backend offers in ``menu``, in its order (none before connecting)."""
    return [] if _items[menu] is _UNLISTED else [item[0] for item in _items[menu]]


def enum(menu: str, **options: Any) -> Any:
    """The EnumProperty of ``menu``, reading and writing the choice stored by name."""
    _, stored, several = MENUS[menu]

    def items(self: Any, context: Any) -> list[Item]:
        return _items[menu]

    if several:
        def get(self: Any) -> int:
            names = set(getattr(self, stored).split(","))
            return sum(number for name, _, _, number in _items[menu] if name in names)

        def set_(self: Any, mask: int) -> None:
            setattr(self, stored, ",".join(name for name, _, _, number in _items[menu] if number & mask))

        return bpy.props.EnumProperty(items=items, get=get, set=set_, options={"ENUM_FLAG"}, **options)

    def get_one(self: Any) -> int:
        return next((number for name, _, _, number in _items[menu] if name == getattr(self, stored)), 0)

    def set_one(self: Any, number: int) -> None:
        setattr(self, stored, next(name for name, _, _, n in _items[menu] if n == number))

    return bpy.props.EnumProperty(items=items, get=get_one, set=set_one, **options)
