"""Worldsculpt: sculpt worlds in Blender with diffusion models running in a separate backend process.

The add-on never imports torch; it talks to the backend over ZeroMQ + msgpack (see ``protocol``).
The extension manifest (blender_manifest.toml, filled in by build_addon.py) describes it; this file only registers the submodules, and unregisters them in reverse.
"""


from . import brushes, caves, curves, explore, link, operators, panels, preferences, properties, simulate, style

_modules = (preferences, properties, link, operators, brushes, style, explore, panels, curves,  # curves' panel sits in Brush
            caves, simulate)


def register() -> None:
    for module in _modules:
        module.register()


def unregister() -> None:
    for module in reversed(_modules):
        module.unregister()
