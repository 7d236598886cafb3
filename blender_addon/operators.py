"""Operators: short, non-blocking. Generate only submits; results arrive through the link's timer."""

from __future__ import annotations

from pathlib import Path

import bpy

from . import link as link_module
from . import preferences
from .link import end_job, link
from .local_backend import backend as local_backend
from .local_backend import is_local
from .protocol.client import BackendError


def _start_local(context: bpy.types.Context, address: str) -> None:
    prefs = preferences.get(context)
    log_dir = Path(bpy.utils.extension_path_user(__package__, create=True))
    local_backend.start(preferences.backend_python(prefs), bpy.path.abspath(prefs.backend_dir), address, log_dir)


class WSC_OT_connect(bpy.types.Operator):
    """Connect to the backend at the address in the add-on preferences"""

    bl_idname = "worldsculpt.connect"
    bl_label = "Connect"

    def execute(self, context: bpy.types.Context) -> set[str]:
        address = preferences.get(context).address
        if preferences.get(context).auto_start and is_local(address) and not local_backend.running:
            try:
                _start_local(context, address)
            except (ValueError, RuntimeError, OSError) as exc:
                self.report({"ERROR"}, f"Could not start the local backend: {exc}")
        end_job(link.cancel(), status="Reconnected")
        link.connect(address)
        context.scene.worldsculpt.status = f"Connecting to {address}..."
        return {"FINISHED"}


class WSC_OT_start_backend(bpy.types.Operator):
    """Start a backend process on this machine and connect to it"""

    bl_idname = "worldsculpt.start_backend"
    bl_label = "Start Local Backend"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return not local_backend.running

    def execute(self, context: bpy.types.Context) -> set[str]:
        address = preferences.get(context).address
        try:
            _start_local(context, address)
        except (ValueError, RuntimeError, OSError) as exc:
            self.report({"ERROR"}, str(exc))
            context.scene.worldsculpt.last_error = str(exc)
            return {"CANCELLED"}
        link.connect(address)
        context.scene.worldsculpt.status = f"Starting backend at {address}..."
        return {"FINISHED"}


class WSC_OT_stop_backend(bpy.types.Operator):
    """Stop the backend process this Blender started"""

    bl_idname = "worldsculpt.stop_backend"
    bl_label = "Stop Local Backend"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return local_backend.running

    def execute(self, context: bpy.types.Context) -> set[str]:
        end_job(link.cancel(), status="Backend stopped")
        local_backend.stop()
        link.close()
        for scene in bpy.data.scenes:
            scene.worldsculpt.connected = False
            scene.worldsculpt.status = "Local backend stopped"
        return {"FINISHED"}


class WSC_OT_generate(bpy.types.Operator):
    """Generate terrain into the target object. Returns at once; previews and the result stream in"""

    bl_idname = "worldsculpt.generate"
    bl_label = "Generate"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return link.connected

    def execute(self, context: bpy.types.Context) -> set[str]:
        settings = context.scene.worldsculpt
        end_job(link.cancel(), status="Superseded")
        try:
            link.submit(settings.generate_params(), settings.target, context.scene.name)
        except BackendError as exc:
            settings.last_error = str(exc)
            self.report({"ERROR"}, f"Generate failed: {exc}")
            return {"CANCELLED"}
        settings.running, settings.progress, settings.last_error = True, 0.0, ""
        settings.status = "Submitted"
        if not bpy.app.timers.is_registered(link_module.tick):  # e.g. after a file load without it
            link_module.register()
        return {"FINISHED"}


class WSC_OT_cancel(bpy.types.Operator):
    """Stop the running generation; the terrain stays as it was before it started"""

    bl_idname = "worldsculpt.cancel"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return link.job is not None

    def execute(self, context: bpy.types.Context) -> set[str]:
        end_job(link.cancel(), status="Cancelled")
        return {"FINISHED"}


_classes = (WSC_OT_connect, WSC_OT_start_backend, WSC_OT_stop_backend, WSC_OT_generate, WSC_OT_cancel)


register, unregister = bpy.utils.register_classes_factory(_classes)
