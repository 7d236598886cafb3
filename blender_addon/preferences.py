"""Add-on preferences: where the backend lives and whether Blender may start it."""

from __future__ import annotations

import os
import shutil

import bpy

DEFAULT_ADDRESS = "tcp://127.0.0.1:5555"


class WSC_AddonPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    address: bpy.props.StringProperty(
        name="Backend address", default=DEFAULT_ADDRESS,
        description="ZeroMQ address of the worldsculpt backend (tcp://host:port or ipc://path)")
    auto_start: bpy.props.BoolProperty(
        name="Start a local backend automatically", default=False,
        description="When connecting and nothing answers, run `worldsculpt serve` (the command below)")
    backend_command: bpy.props.StringProperty(
        name="Backend command", subtype="FILE_PATH", default="",
        description="The `worldsculpt` command that `pip install worldsculpt` made (for example "
                    "<venv>/bin/worldsculpt); empty: the one on PATH")
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
        layout.prop(self, "backend_command")
        layout.prop(self, "roots")
        layout.prop(self, "keys_dir")


def get(context: bpy.types.Context | None = None) -> WSC_AddonPreferences:
    return (context or bpy.context).preferences.addons[__package__].preferences


def backend_command(prefs: WSC_AddonPreferences) -> str:
    """The installed `worldsculpt` command: the preference, else the one on PATH."""
    if prefs.backend_command:
        return bpy.path.abspath(prefs.backend_command)
    found = shutil.which("worldsculpt")
    if found is None:
        raise ValueError("no `worldsculpt` command on PATH: `pip install worldsculpt` into a Python with torch, "
                         "then set its path as the Backend command in the Worldsculpt add-on preferences")
    return found


def backend_roots(prefs: WSC_AddonPreferences) -> list[str]:
    """The --root folders for a backend Blender starts (none: the backend's default, the home folder)."""
    return [bpy.path.abspath(p.strip()) for p in prefs.roots.split(os.pathsep) if p.strip()]


def register() -> None:
    bpy.utils.register_class(WSC_AddonPreferences)


def unregister() -> None:
    bpy.utils.unregister_class(WSC_AddonPreferences)
