"""Add-on preferences: where the backend lives and whether Blender may start it."""

from __future__ import annotations

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

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.prop(self, "address")
        layout.prop(self, "auto_start")
        layout.prop(self, "backend_command")


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


def register() -> None:
    bpy.utils.register_class(WSC_AddonPreferences)


def unregister() -> None:
    bpy.utils.unregister_class(WSC_AddonPreferences)
