"""Scenario: generate, export through the backend (WSC_OT_export) and through Blender (WSC_OT_export_blender).

    python export.py <zip> <backend address> <out dir>

Writes the mesh heights to <out dir>/heights.npy and the backend's files to <out dir>/backend/; the
pytest side reads the 16-bit PNG back. The .glb is re-imported here and compared with the terrain.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import bpy
import numpy as np
from mathutils import Matrix

import _harness as h

zip_path, address, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
addon = h.install(zip_path)
h.connect(addon, address)
s = h.settings()
target = "Export Terrain"
h.generate(addon, target=target, resolution=40, size_m=800.0, height_m=200.0, steps=3, seed=11)
h.check(s.last_error == "", f"generation failed: {s.last_error}")
rows, cols = bpy.data.objects[target].data[addon.mesh.SHAPE_KEY]
heights = h.positions(target)[:, 2].reshape(rows, cols)
np.save(out / "heights.npy", heights)

s.export_dir = str(out / "backend")
s.export_name = "scenario"
s.export_formats = {"png16", "geotiff", "glb"}
s.export_preset = "none"
check_labels = h.LayoutRecorder()
addon.panels.WSC_PT_export.draw(type("Ctx", (), {"layout": check_labels})(), bpy.context)
h.check(bpy.ops.worldsculpt.export() == {"FINISHED"}, "export operator did not finish at once")
h.pump(addon, lambda: s.export_status.startswith(("Exported", "Export failed")), 30.0, "export")
h.results["export_status"] = s.export_status
backend_glb = (out / "backend" / "scenario.glb").read_bytes()

obj = bpy.data.objects[target]
obj.location = (100.0, -50.0, 10.0)
obj.rotation_euler = (0.0, 0.0, 0.5)
obj.scale = (2.0, 2.0, 0.5)
bpy.context.view_layer.update()
before = [tuple(row) for row in obj.matrix_world]
world = np.array(obj.matrix_world) @ np.c_[h.positions(target), np.ones(len(heights.ravel()))].T
objects_before = {o.name for o in bpy.data.objects}

s.export_blender_format = "GLB"
h.check(bpy.ops.worldsculpt.export_blender() == {"FINISHED"}, f"Blender export failed: {s.export_status}")
h.check({o.name for o in bpy.data.objects} == objects_before, "the export copy was left in the file")
h.check([tuple(row) for row in obj.matrix_world] == before, "the artist's object transform changed")
h.check(obj.data.name in bpy.data.meshes and len(obj.data.vertices) == heights.size, "artist's mesh changed")

glb = out / "backend" / "scenario_blender.glb"
h.check(glb.exists(), f"{glb} not written")
h.check((out / "backend" / "scenario.glb").read_bytes() == backend_glb, "the backend's scenario.glb was overwritten")
h.results["glb_status"] = s.export_status
h.check(bpy.ops.worldsculpt.export_blender() == {"FINISHED"}, f"second Blender export failed: {s.export_status}")
h.results["second_glb_status"] = s.export_status
chunk = glb.read_bytes()
h.results["glb_nodes"] = [n.get("name") for n in json.loads(chunk[20:20 + int.from_bytes(chunk[12:16], "little")])["nodes"]]
h.results["names_after_export"] = [obj.name, obj.data.name]
h.check(bpy.ops.import_scene.gltf(filepath=str(glb)) == {"FINISHED"}, "re-import of the .glb failed")
(imported,) = [o for o in bpy.data.objects if o.name not in objects_before]
h.check(imported.matrix_world == Matrix.Identity(4), "imported object carries a transform")
xyz = np.empty(len(imported.data.vertices) * 3, np.float32)
imported.data.attributes["position"].data.foreach_get("vector", xyz)
xyz = (np.array(imported.matrix_world) @ np.c_[xyz.reshape(-1, 3), np.ones(len(xyz) // 3)].T)[:3].T
h.results["glb_vertices"] = [len(imported.data.vertices), int(heights.size)]
h.results["glb_bounds"] = [xyz.min(0).tolist(), xyz.max(0).tolist()]
h.results["world_bounds"] = [world[:3].min(1).tolist(), world[:3].max(1).tolist()]
h.check(len(imported.data.vertices) == heights.size, "re-imported vertex count differs")
h.check(np.allclose(xyz.min(0), world[:3].min(1), atol=1e-2) and np.allclose(xyz.max(0), world[:3].max(1), atol=1e-2),
        "re-imported bounds differ from the terrain's world bounds")

s.export_blender_format = "FBX"
h.check(bpy.ops.worldsculpt.export_blender() == {"FINISHED"}, f"FBX export failed: {s.export_status}")
h.check((out / "backend" / "scenario_blender.fbx").stat().st_size > 0, "no .fbx written")
h.check([tuple(row) for row in obj.matrix_world] == before, "FBX export changed the artist's transform")
h.finish()
