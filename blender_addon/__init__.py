"""Worldsculpt: sculpt worlds in Blender with diffusion models running in a separate backend process.

The add-on never imports torch; it talks to the backend over ZeroMQ + msgpack (see ``protocol``).
This file only registers the submodules, and unregisters them in reverse.
"""

bl_info = {  # for loaders older than the 4.2 extension system; blender_manifest.toml is authoritative
    "name": "Worldsculpt",
    "author": "Worldsculpt contributors",
    "version": (0, 1, 0),
    "blender": (4, 2, 0),
    "location": "3D Viewport > Sidebar > Worldsculpt",
    "description": "Generate terrain with diffusion models served by a local backend",
    "category": "Add Mesh",
}

from . import brushes, curves, explore, link, operators, panels, preferences, properties, style  # noqa: E402

_modules = (preferences, properties, link, operators, brushes, style, explore, panels, curves)  # curves' panel sits in Brush


def register() -> None:
    for module in _modules:
        module.register()


def unregister() -> None:
    for module in reversed(_modules):
        module.unregister()
