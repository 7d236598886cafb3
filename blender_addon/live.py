"""Live status of the session (connection, job progress, panel messages), kept in memory. No bpy.

These describe this Blender session, not the artist's scene: as scene properties, undo rewound them
(an undone curve left "Shaping river..." forever) and a saved file carried them (a reopened file said
"Done" and "Device: cpu" with no backend). Here undo leaves them alone and a new session starts blank.
"""

from __future__ import annotations

from typing import Any

DEFAULTS: dict[str, Any] = {
    "connected": False, "status": "Not connected", "device": "", "progress": 0.0, "running": False,
    "last_error": "", "export_status": "", "brush_status": "", "style_status": "", "explore_status": "",
    "explore_progress": 0.0, "caves_status": "", "caves_progress": 0.0,
}

_values: dict[str, dict[str, Any]] = {}  # scene name -> the values set so far


def field(name: str) -> property:
    """A Python property of the settings group, stored per scene (by its name) in this module."""
    default = DEFAULTS[name]

    def get(settings: Any) -> Any:
        return _values.get(settings.id_data.name, {}).get(name, default)

    def set_(settings: Any, value: Any) -> None:
        _values.setdefault(settings.id_data.name, {})[name] = type(default)(value)

    return property(get, set_, doc=f"live {name} (not saved, not undone)")


def clear() -> None:
    """Forget everything: the add-on is being disabled."""
    _values.clear()
