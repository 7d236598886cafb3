"""Operators: short, non-blocking. Generate only submits; results arrive through the link's timer."""

from __future__ import annotations

from pathlib import Path

import bpy

from . import link as link_module
from . import mesh, naming, preferences
from .link import end_job, link
from .local_backend import backend as local_backend
from .local_backend import is_local
from .protocol.client import BackendError


def _start_local(context: bpy.types.Context, address: str) -> None:
    prefs = preferences.get(context)
    log_dir = Path(bpy.utils.extension_path_user(__package__, create=True))
    local_backend.start(preferences.backend_command(prefs), address, log_dir, preferences.backend_roots(prefs))


def _connect(operator: bpy.types.Operator, context: bpy.types.Context, address: str) -> bool:
    """Connect with the CURVE keys in the preferences, if any; False (reported) when they cannot be read."""
    try:
        link.connect(address, bpy.path.abspath(preferences.get(context).keys_dir))
    except (OSError, ValueError) as exc:
        operator.report({"ERROR"}, f"Could not read the backend keys: {exc}")
        return False
    return True


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
        if not _connect(self, context, address):
            return {"CANCELLED"}
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
        if not _connect(self, context, address):
            return {"CANCELLED"}
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
        link_module.wake()  # drain soon, also after a file load that dropped the timer
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


def _terrain(context: bpy.types.Context) -> bpy.types.Object | None:
    return bpy.data.objects.get(context.scene.worldsculpt.target)


class WSC_OT_export(bpy.types.Operator):
    """Send the target's heights to the backend, which writes the chosen formats. Returns at once"""

    bl_idname = "worldsculpt.export"
    bl_label = "Export"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        # not while a generate job runs: the object then shows a preview mesh, not the artist's terrain
        return (link.connected and link.export_job is None and not context.scene.worldsculpt.running
                and _terrain(context) is not None)

    def execute(self, context: bpy.types.Context) -> set[str]:
        settings = context.scene.worldsculpt
        try:
            heights, cell_size = mesh.read_heights(_terrain(context))
            if not settings.export_formats:
                raise ValueError("choose at least one export format")
            link.submit_export(settings.export_params(cell_size), heights, settings.target, context.scene.name)
        except (ValueError, BackendError) as exc:
            settings.export_status = f"Export failed: {exc}"
            self.report({"ERROR"}, f"Export failed: {exc}")
            return {"CANCELLED"}
        settings.export_status = "Export submitted"
        link_module.wake()
        return {"FINISHED"}


class WSC_OT_export_blender(bpy.types.Operator):
    """Export the terrain with Blender's own glTF or FBX exporter (a transformed copy, alone in the file).

    glTF: +Y up, -Z forward (the glTF convention; the exporter converts from Blender's Z up), metres.
    FBX: -Z forward, Y up, apply_unit_scale with FBX_SCALE_UNITS so 1 m = 1 unit (Unity reads it at
    scale 1; Unreal's FBX import converts Y up and metres to its Z up centimetres by itself).
    """

    bl_idname = "worldsculpt.export_blender"
    bl_label = "Export with Blender"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        obj = _terrain(context)
        return obj is not None and obj.type == "MESH" and obj.mode == "OBJECT"

    def execute(self, context: bpy.types.Context) -> set[str]:
        settings = context.scene.worldsculpt
        fmt = settings.export_blender_format
        folder = Path(bpy.path.abspath(settings.export_dir))
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = naming.new_export_path(folder, settings.export_name, f".{fmt.lower()}")
            self._export(context, _terrain(context), path, fmt)
        except (OSError, RuntimeError, ValueError) as exc:
            settings.export_status = f"Blender export failed: {exc}"
            self.report({"ERROR"}, settings.export_status)
            return {"CANCELLED"}
        settings.export_status = f"Wrote {path.name}"
        return {"FINISHED"}

    @staticmethod
    def _export(context: bpy.types.Context, source: bpy.types.Object, path: Path, fmt: str) -> None:
        """Export a copy with its transform baked into the vertices; the artist's object is left as it was.
        The copy takes the object's and mesh's names for the export (the originals step aside meanwhile), so
        the file's node is "Terrain", not "Terrain.001"."""
        view_layer = context.view_layer
        selected = [o for o in view_layer.objects if o.select_get()]
        active = view_layer.objects.active
        copy = source.copy()
        copy.data = source.data.copy()
        copy.animation_data_clear()
        copy.parent = None
        context.scene.collection.objects.link(copy)
        names = source.name, source.data.name
        source.name, source.data.name = f"{names[0]} (exporting)", f"{names[1]} (exporting)"
        copy.name, copy.data.name = names
        try:
            copy.data.transform(source.matrix_world)  # location, rotation, scale applied on the copy
            copy.matrix_world.identity()
            for obj in selected:
                obj.select_set(False)
            copy.select_set(True)
            view_layer.objects.active = copy
            if fmt == "GLB":
                result = bpy.ops.export_scene.gltf(filepath=str(path), export_format="GLB", use_selection=True,
                                                   export_yup=True, export_apply=True)
            else:
                result = bpy.ops.export_scene.fbx(filepath=str(path), use_selection=True, object_types={"MESH"},
                                                  apply_unit_scale=True, apply_scale_options="FBX_SCALE_UNITS",
                                                  axis_forward="-Z", axis_up="Y", use_mesh_modifiers=True)
            if result != {"FINISHED"}:
                raise RuntimeError(f"Blender's {fmt} exporter returned {result}")
        finally:
            data = copy.data
            bpy.data.objects.remove(copy)
            bpy.data.meshes.remove(data)
            source.name, source.data.name = names
            for obj in selected:
                obj.select_set(True)
            view_layer.objects.active = active


_classes = (WSC_OT_connect, WSC_OT_start_backend, WSC_OT_stop_backend, WSC_OT_generate, WSC_OT_cancel,
            WSC_OT_export, WSC_OT_export_blender)


register, unregister = bpy.utils.register_classes_factory(_classes)
