"""Caves: voxel chunks under the terrain stream into a collection live, and voxel brushes edit them.

A region job (``voxels``) asks for the chunks around the 3D cursor; the backend sends each chunk's mesh
as soon as it is made and this module, on the link's timer (``link.modes``, main thread, never waiting),
writes it into the chunk's object with bulk ``foreach_set`` calls. Brush jobs (``voxel_edit``: carve a
tunnel along a stroke, fill, regenerate) are stored in the world folder by the backend before it answers
with the meshes that changed, so a reopened world shows them. Each stored edit's number is listed on the
caves collection before the undo step is pushed, so Blender's undo and redo rewind the list with the meshes;
after them, ``sync_voxel_history`` asks the backend (``voxel_undo``) to undo or redo in the world the edits
the list lost or regained. Chunk objects are children of the terrain, in its frame: the caves follow it.
The layout and the params are worked out in ``caves_plan`` (no bpy).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bpy
import numpy as np
from mathutils import Vector

from . import caves_plan as plan
from . import edit_history
from . import link as link_module
from . import mesh as terrain_mesh
from .explore import world_folder
from .link import link, push_undo
from .protocol import ErrorCode, Message
from .protocol.client import BackendError, Client


@dataclass
class CaveJob:
    job_id: str
    kind: str  # "voxels", a brush op or "undo" (Blender's undo or redo followed in the world)
    client: Client
    history: str = ""  # the voxel history (``plan.history_key``) the job's world and voxel size keep
    submitted: float = field(default_factory=time.monotonic)
    chunks: int = 0  # meshes received


@dataclass
class Caves:
    """The caves' jobs in flight (names only: references die across undo)."""

    scene: str = ""
    terrain: str = ""
    jobs: dict[str, CaveJob] = field(default_factory=dict)
    region: dict[str, Any] = field(default_factory=dict)  # chunk_min and chunk_count of the last region asked for
    timings: list[tuple[str, int, float]] = field(default_factory=list)  # (kind, chunks, seconds) per finished job

    def update(self, messages: list[Message]) -> bool:
        """The link's tick: place arrived meshes, finish jobs. True while jobs run (fast ticks)."""
        for msg in messages:
            job = self.jobs.get(msg.parent or "")
            if job is not None:
                self._on_message(job, msg)
        for job_id, job in list(self.jobs.items()):
            if link.client is not job.client or not link.connected:
                del self.jobs[job_id]
                self._status("Stopped: the backend connection was lost")
        return bool(self.jobs)

    def _on_message(self, job: CaveJob, msg: Message) -> None:
        scene = bpy.data.scenes.get(self.scene)
        if msg.kind == "progress" and scene is not None:
            c = msg.content
            scene.worldsculpt.caves.progress = min(1.0, c["step"] / max(1, c["total"]))
            self._status(f"{c['stage'].title()}: {c['step']}/{c['total']} chunks")
        elif msg.kind == "preview" and scene is not None:
            try:
                job.chunks += self._place(scene, msg.content["meta"], msg.arrays, create=job.kind != "undo")
            except (ValueError, KeyError) as exc:  # a bad mesh: the chunk stays as it was
                self._status(f"Chunk not shown: {exc}")
        elif msg.kind in ("result", "error"):
            del self.jobs[job.job_id]
            took = time.monotonic() - job.submitted
            if msg.kind == "error":
                cancelled = msg.content["code"] in (ErrorCode.CANCELLED.value, ErrorCode.SUPERSEDED.value)
                self._status("Cancelled" if cancelled else f"Failed: {msg.content['code']}: {msg.content['message']}")
                return
            self.timings.append((job.kind, job.chunks, took))
            meta = msg.content["meta"]
            if job.kind == "undo":  # Blender's undo or redo: no undo step of its own (it would cut the redo)
                self._status(f"Voxel edits: {len(meta['undone'])} undone, {len(meta['redone'])} redone")
                return
            if meta.get("edit_seq") is not None and scene is not None:
                _remember_edit(scene, job.history, int(meta["edit_seq"]))
            push_undo(f"Worldsculpt: caves {job.kind}")
            self._status(f"Done: {len(meta['chunks'])} chunks, {meta['faces']} faces in {took:.1f} s"
                         + (f", {len(meta['edited'])} edited" if meta["edited"] else "")
                         + (f", wrote {', '.join(Path(f).name for f in meta['files'])}" if meta["files"] else ""))

    def _place(self, scene: bpy.types.Scene, meta: dict[str, Any], arrays: dict[str, np.ndarray],
               create: bool = True) -> bool:
        """Write one chunk's mesh into its object in the caves collection (made on first use when ``create``:
        after Blender's undo, the objects it kept are the ones to show); whether it was written."""
        vertices, faces, material = arrays["vertices"], arrays["faces"], arrays["material"]
        plan.check_mesh(vertices, faces, material)
        colours = plan.element_colours(material, meta["palette"])
        name = plan.chunk_name(meta["chunk"])
        obj = bpy.data.objects.get(name)
        if obj is None and not create:
            return False
        if obj is None:
            obj = bpy.data.objects.new(name, bpy.data.meshes.new(name))
            _collection(scene).objects.link(obj)
        terrain = bpy.data.objects.get(self.terrain)
        if terrain is not None and obj.parent != terrain:  # a child in the terrain's own frame: it follows it
            obj.parent = terrain
            obj.matrix_parent_inverse.identity()
            obj.matrix_basis.identity()
        obj[plan.CHUNK_KEY] = list(meta["chunk"])
        write_chunk_mesh(obj.data, vertices, faces, material, colours, meta["material_domain"],
                         smooth=meta["mesh"] == "smooth")
        return True

    def _status(self, text: str) -> None:
        scene = bpy.data.scenes.get(self.scene)
        if scene is not None and scene.worldsculpt.caves.status != text:
            scene.worldsculpt.caves.status = text

    def stop(self) -> None:
        """Cancel every cave job in flight (the backend stops between chunks); what arrived stays."""
        for job_id, job in self.jobs.items():
            if link.client is job.client and link.connected:
                link.client.cancel_submitted(job_id)
        self.jobs.clear()
        self._status("Stopped")

    def submit(self, context: bpy.types.Context, kind: str, params: dict[str, Any]) -> None:
        """Send a voxel job for the scene's terrain (its heights as the array); BackendError/ValueError say why not."""
        if link.client is None or not link.connected:
            raise BackendError(ErrorCode.DISCONNECTED.value, "not connected to a backend")
        terrain = _terrain(context)
        heights, cell_size = terrain_mesh.read_heights(terrain)
        caves = context.scene.worldsculpt.caves
        params = {**plan.frame_params(caves, cell_size, params.get("world") or world_folder(context)),
                  "style_weights": context.scene.worldsculpt.style_mix(), **params}
        job = {"voxels": "voxels", "undo": "voxel_undo"}.get(kind, "voxel_edit")
        target = f"caves:{terrain.name}" if job == "voxels" else ""  # edits never supersede each other
        job_id = link.client.submit_nowait(job, params, target, {"heights": heights})
        self.scene, self.terrain = context.scene.name, terrain.name
        if job == "voxels":  # a newer region replaces the queued one on the backend: forget it here too
            self.jobs = {k: j for k, j in self.jobs.items() if j.kind != "voxels"}
            self.region = {"chunk_min": params["chunk_min"], "chunk_count": params["chunk_count"]}
        self.jobs[job_id] = CaveJob(job_id, kind, link.client, plan.history_key(params["world"], params["voxel_size"]))
        caves.progress = 0.0
        self._status("Generating caves..." if kind == "voxels" else f"{kind.title()}...")
        link_module.wake()


caves = Caves()
history = edit_history.History()  # voxel edits this session stored, per history key


def _remember_edit(scene: bpy.types.Scene, key: str, seq: int) -> None:
    """A stored voxel edit: listed on the caves collection (before the undo push, so undo rewinds the list)."""
    collection = _collection(scene)
    edits = {name: {"key": str(e["key"]), "seqs": list(e["seqs"])}
             for name, e in collection.get(plan.EDITS_KEY, {}).items()}
    name = plan.history_name(key)
    edits[name] = {"key": key, "seqs": [*edits.get(name, {"seqs": []})["seqs"], seq]}
    collection[plan.EDITS_KEY] = edits
    history.commit(key, seq)


@bpy.app.handlers.persistent
def sync_voxel_history(*_: Any) -> None:
    """After Blender's undo or redo: undo or redo in each world the voxel edits the caves collections stopped or
    started listing (a ``voxel_undo`` job per world and voxel size, which remeshes the chunks it changes)."""
    listed: dict[str, set[int]] = {}
    for collection in bpy.data.collections:
        for edits in collection.get(plan.EDITS_KEY, {}).values():
            listed.setdefault(str(edits["key"]), set()).update(edits["seqs"])
    for key, (undo, redo) in history.changes(listed).items():
        world, voxel_size = plan.split_history_key(key)
        try:
            caves.submit(bpy.context, "undo", {"world": world, "voxel_size": voxel_size, "undo": undo, "redo": redo})
        except (ValueError, BackendError) as exc:
            caves._status(f"Voxel edits not undone: {exc}")


def _terrain(context: bpy.types.Context) -> bpy.types.Object:
    obj = bpy.data.objects.get(context.scene.worldsculpt.target)
    if obj is None:
        raise ValueError(f"no terrain {context.scene.worldsculpt.target!r}: generate one first")
    terrain_mesh.read_heights(obj)  # ValueError unless it holds a Worldsculpt grid
    return obj


def _collection(scene: bpy.types.Scene) -> bpy.types.Collection:
    collection = bpy.data.collections.get(plan.COLLECTION) or bpy.data.collections.new(plan.COLLECTION)
    if collection.name not in scene.collection.children:
        scene.collection.children.link(collection)
    return collection


def write_chunk_mesh(mesh: bpy.types.Mesh, vertices: np.ndarray, faces: np.ndarray, material: np.ndarray,
                     colours: np.ndarray, domain: str, smooth: bool) -> None:
    """Replace the mesh with these triangles or quads in bulk; palette indices as an attribute of ``domain``
    (POINT or FACE) and their colours as the mesh's colour attribute (per point, or per face corner)."""
    corners = faces.shape[1]
    mesh.clear_geometry()
    mesh.vertices.add(len(vertices))
    mesh.loops.add(len(faces) * corners)
    mesh.polygons.add(len(faces))
    mesh.attributes["position"].data.foreach_set("vector", np.ascontiguousarray(vertices, np.float32).ravel())
    if len(faces):
        mesh.attributes[".corner_vert"].data.foreach_set("value", np.ascontiguousarray(faces, np.int32).ravel())
        mesh.polygons.foreach_set("loop_start", np.arange(0, len(faces) * corners, corners, dtype=np.int32))
    mesh.update(calc_edges=True)
    index = mesh.attributes.new(plan.MATERIAL_ATTRIBUTE, "INT", domain)
    index.data.foreach_set("value", material.astype(np.int32))
    per_corner = domain == "FACE"  # colour attributes live on points or corners: a face's corners share its colour
    colour = mesh.attributes.new(plan.COLOR_ATTRIBUTE, "FLOAT_COLOR", "CORNER" if per_corner else "POINT")
    colour.data.foreach_set("color", np.repeat(colours.reshape(-1, 4), corners, 0).ravel() if per_corner else colours)
    mesh.attributes.active_color_name = mesh.attributes.default_color_name = plan.COLOR_ATTRIBUTE
    if smooth and len(faces):
        mesh.shade_smooth()
    if not mesh.materials:
        mesh.materials.append(voxel_material())


def voxel_material() -> bpy.types.Material:
    """A Principled BSDF coloured by the chunks' palette colour attribute (made once)."""
    material = bpy.data.materials.get(plan.MATERIAL_NAME)
    if material is not None:
        return material
    material = bpy.data.materials.new(plan.MATERIAL_NAME)
    material.use_nodes = True
    nodes, links = material.node_tree.nodes, material.node_tree.links
    nodes.clear()
    bsdf = nodes.new("ShaderNodeBsdfPrincipled")
    bsdf.inputs["Roughness"].default_value = 0.9
    colour = nodes.new("ShaderNodeAttribute")
    colour.attribute_name = plan.COLOR_ATTRIBUTE
    links.new(colour.outputs["Color"], bsdf.inputs["Base Color"])
    links.new(bsdf.outputs["BSDF"], nodes.new("ShaderNodeOutputMaterial").inputs["Surface"])
    return material


# -- operators and panel -----------------------------------------------------------------------------

class _CavesOperator:
    """Send one voxel job (``request`` says which, with what params) and return at once; a refusal says why."""

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return link.connected

    def request(self, context: bpy.types.Context, terrain: bpy.types.Object) -> tuple[str, dict[str, Any]]:
        raise NotImplementedError

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            caves.submit(context, *self.request(context, _terrain(context)))
        except (ValueError, BackendError) as exc:
            context.scene.worldsculpt.caves.status = f"Not started: {exc}"
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        return {"FINISHED"}


class WSC_OT_caves_generate(_CavesOperator, bpy.types.Operator):
    """Make the voxel chunks around the 3D cursor under the terrain; they stream in while Blender stays free"""

    bl_idname = "worldsculpt.caves_generate"
    bl_label = "Generate Caves"

    def request(self, context: bpy.types.Context, terrain: bpy.types.Object) -> tuple[str, dict[str, Any]]:
        s = context.scene.worldsculpt.caves
        heights, cell_size = terrain_mesh.read_heights(terrain)
        x, y, _ = terrain.matrix_world.inverted() @ context.scene.cursor.location
        region = plan.region_at(x, y, heights, cell_size, float(s.voxel_size), s.size, s.depth)
        params: dict[str, Any] = {"chunk_min": list(region.chunk_min), "chunk_count": list(region.chunk_count)}
        if s.coarse_far:
            params["lod"] = plan.lod_rings(x, y, region, float(s.voxel_size), s.lod_radius)
        return "voxels", params


class WSC_OT_caves_export(_CavesOperator, bpy.types.Operator):
    """Write the last caves region as MagicaVoxel .vox and GLB into the Export panel's folder"""

    bl_idname = "worldsculpt.caves_export"
    bl_label = "Export Caves"

    def request(self, context: bpy.types.Context, terrain: bpy.types.Object) -> tuple[str, dict[str, Any]]:
        if not caves.region:
            raise ValueError("generate caves first: the export writes the last region")
        s = context.scene.worldsculpt
        export = {"out_dir": bpy.path.abspath(s.export_dir), "name": f"{s.export_name}_caves", "formats": ["vox", "glb"]}
        return "voxels", {**caves.region, "export": export}


class WSC_OT_caves_stop(bpy.types.Operator):
    """Stop the cave jobs in flight; the chunks already shown stay"""

    bl_idname = "worldsculpt.caves_stop"
    bl_label = "Stop Caves"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return bool(caves.jobs)

    def execute(self, context: bpy.types.Context) -> set[str]:
        caves.stop()
        return {"FINISHED"}


class WSC_VoxelPoint(bpy.types.PropertyGroup):
    co: bpy.props.FloatVectorProperty(name="Location", size=3, subtype="XYZ")


class WSC_OT_caves_edit(_CavesOperator, bpy.types.Operator):
    """Carve a tunnel, fill or regenerate the voxels along the selected curve (or the given points)"""

    bl_idname = "worldsculpt.caves_edit"
    bl_label = "Voxel Brush"
    bl_options = {"REGISTER"}

    op: bpy.props.EnumProperty(name="Brush", items=(
        ("carve", "Carve Tunnel", "Hollow out a tunnel along the stroke"),
        ("fill", "Fill", "Fill the stroke's tube with the chosen material"),
        ("regenerate", "Regenerate", "Ask the cave generator again inside the stroke's tube")))
    points: bpy.props.CollectionProperty(type=WSC_VoxelPoint, name="Stroke",
                                         description="World-space points; empty: the active curve's points")

    def request(self, context: bpy.types.Context, terrain: bpy.types.Object) -> tuple[str, dict[str, Any]]:
        s = context.scene.worldsculpt.caves
        world = [tuple(p.co) for p in self.points] or _curve_points(context.active_object)
        inverse = terrain.matrix_world.inverted()
        stroke = {"op": self.op, "points": [list(inverse @ Vector(p)) for p in world], "radius": float(s.radius),
                  "material": s.fill_material}
        return self.op, {"edit": stroke}


def _curve_points(obj: bpy.types.Object | None) -> list[tuple[float, float, float]]:
    """World-space control points of the active curve's first spline; ValueError without one."""
    if obj is None or obj.type != "CURVE" or not obj.data.splines:
        raise ValueError("select a curve along the stroke (or give the operator its points)")
    spline = obj.data.splines[0]
    points = spline.bezier_points if spline.type == "BEZIER" else spline.points
    return [tuple(obj.matrix_world @ Vector(tuple(p.co)[:3])) for p in points]


class WSC_PT_caves(bpy.types.Panel):
    """Caves: the region around the 3D cursor, its voxels and sliders, and the voxel brushes."""

    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Worldsculpt"
    bl_label = "Caves"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        s = context.scene.worldsculpt.caves
        layout = self.layout
        layout.use_property_split = True
        col = layout.column()
        for name in ("source", "size", "depth", "voxel_size", "mesh_style"):
            col.prop(s, name)
        if s.source == "learned":
            col.prop(s, "memory")
            if s.memory:
                col.prop(s, "cave_density_from_memory")
        density = col.row()
        density.active = not (s.source == "learned" and s.memory and s.cave_density_from_memory)
        density.prop(s, "cave_density")
        for name in ("overhang", "passages", "seed", "cover"):
            col.prop(s, name)
        col.prop(s, "coarse_far")
        if s.coarse_far:
            col.prop(s, "lod_radius")
        layout.label(text="Region: around the 3D cursor, on the Generate target")
        row = layout.row()
        row.operator("worldsculpt.caves_generate", icon="MESH_ICOSPHERE")
        row.operator("worldsculpt.caves_stop", icon="PAUSE")
        layout.operator("worldsculpt.caves_export", icon="EXPORT")
        box = layout.box()
        box.label(text="Voxel brush along the active curve")
        box.prop(s, "radius")
        box.prop(s, "fill_material")
        row = box.row()
        for op, icon in (("carve", "REMOVE"), ("fill", "ADD"), ("regenerate", "FILE_REFRESH")):
            row.operator("worldsculpt.caves_edit", text=op.title(), icon=icon).op = op
        if caves.jobs and s.progress < 1.0:
            layout.progress(factor=s.progress, text=f"Chunks {s.progress:.0%}")
        if s.status:
            layout.label(text=s.status, icon="ERROR" if s.status.startswith(("Failed", "Not", "Chunk not", "Stopped"))
                         else "INFO")


_classes = (WSC_VoxelPoint, WSC_OT_caves_generate, WSC_OT_caves_edit, WSC_OT_caves_export, WSC_OT_caves_stop,
            WSC_PT_caves)
_register_classes, _unregister_classes = bpy.utils.register_classes_factory(_classes)


def register() -> None:
    _register_classes()
    if caves.update not in link_module.modes:
        link_module.modes.append(caves.update)
    for handlers in (bpy.app.handlers.undo_post, bpy.app.handlers.redo_post):
        if sync_voxel_history not in handlers:
            handlers.append(sync_voxel_history)


def unregister() -> None:
    if caves.update in link_module.modes:
        link_module.modes.remove(caves.update)
    for handlers in (bpy.app.handlers.undo_post, bpy.app.handlers.redo_post):
        if sync_voxel_history in handlers:
            handlers.remove(sync_voxel_history)
    caves.jobs.clear()
    caves.region.clear()
    history.clear()
    _unregister_classes()
