"""Add-on preferences: where the backend lives and whether Blender may start it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import bpy

DEFAULT_ADDRESS = "tcp://127.0.0.1:5555"


class WSC_AddonPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    address: bpy.props.StringProperty(
        name="Backend address", default=DEFAULT_ADDRESS,
        description="ZeroMQ address of the worldsculpt backend (tcp://host:port or ipc://path)")
    auto_start: bpy.props.BoolProperty(
        name="Start a local backend automatically", default=False,
        description="When connecting and nothing answers, run `python -m backend serve` from the project below")
    python_executable: bpy.props.StringProperty(
        name="Python executable", subtype="FILE_PATH", default="",
        description="Python that has the backend's dependencies (torch); empty: <project>/.venv's python")
    backend_dir: bpy.props.StringProperty(
        name="Backend project folder", subtype="DIR_PATH", default="",
        description="Folder containing the `backend` package (the worldsculpt repository)")
    roots: bpy.props.StringProperty(
        name="Folders the backend may use", default="",
        description="For a backend Blender starts: the folders exports, worlds and reference files must lie in, "
                    f"separated by '{os.pathsep}' (empty: your home folder)")
    keys_dir: bpy.props.StringProperty(
        name="Backend keys folder", subtype="DIR_PATH", default="",
        description="For a backend on another machine (started with --keys): a folder holding its "
                    "client.key_secret and server.key; empty for a local backend")

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.prop(self, "address")
        layout.prop(self, "auto_start")
        layout.prop(self, "backend_dir")
        layout.prop(self, "python_executable")
        layout.prop(self, "roots")
        layout.prop(self, "keys_dir")


def get(context: bpy.types.Context | None = None) -> WSC_AddonPreferences:
    return (context or bpy.context).preferences.addons[__package__].preferences


def backend_python(prefs: WSC_AddonPreferences) -> str:
    """The interpreter to run the backend with: the preference, else the project's own venv."""
    if prefs.python_executable:
        return bpy.path.abspath(prefs.python_executable)
    venv = Path(bpy.path.abspath(prefs.backend_dir)) / ".venv"
    candidate = venv / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    if prefs.backend_dir and candidate.exists():
        return os.fspath(candidate)
    raise ValueError("set the backend's Python executable (or a backend folder with a .venv) in the "
                     "Worldsculpt add-on preferences")


def backend_roots(prefs: WSC_AddonPreferences) -> list[str]:
    """The --root folders for a backend Blender starts (none: the backend's default, the home folder)."""
    return [bpy.path.abspath(p.strip()) for p in prefs.roots.split(os.pathsep) if p.strip()]


def register() -> None:
    bpy.utils.register_class(WSC_AddonPreferences)


def unregister() -> None:
    bpy.utils.unregister_class(WSC_AddonPreferences)
