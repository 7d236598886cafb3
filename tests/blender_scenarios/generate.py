"""Scenario: install the zip, connect, generate twice, undo, regenerate at another resolution, disable.

    python generate.py <zip> <backend address> <out dir>

Writes the mesh positions after each step to <out dir>/*.npy and the job params to params.json;
the pytest side compares them with heights it fetches from the backend itself.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import bpy
import numpy as np

import _harness as h

zip_path, address, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
addon = h.install(zip_path)
python = f"python{sys.version_info.major}.{sys.version_info.minor}"  # Blender's own: 3.11 or 3.13
wheels_dir = Path(bpy.utils.user_resource("EXTENSIONS", path=f".local/lib/{python}/site-packages"))
h.results["installed_wheels"] = sorted(p.name for p in wheels_dir.iterdir()) if wheels_dir.exists() else []
h.connect(addon, address)
s = h.settings()
h.check(s.device != "", "device not shown after connecting")
h.check(f"Device: {s.device}" in h.draw_panels(addon), "connection panel does not show the device")
h.check(len(s.style_weights) > 0, "no styles listed after connecting")
# the menus the backend declares (hello_reply), each at its default
h.results["menus_after_connect"] = {"quality": s.quality, "erosion_stage": s.erosion_stage, "brush_falloff": s.brush_falloff,
                                    "brush_kind": s.brush_kind, "curve_kind": s.curve_kind,
                                    "export_format": sorted(s.export_formats), "export_preset": s.export_preset,
                                    "simulate_engine": bpy.context.scene.worldsculpt_simulate.engine,
                                    "voxel_size": s.caves.voxel_size, "voxel_mesh": s.caves.mesh_style,
                                    "voxel_source": s.caves.source, "ground_cover": s.caves.cover,
                                    "fill_material": s.caves.fill_material}
s.style_preset = s.style_weights[-1].name  # a preset sets the mixing weights to that one style
h.check([w.weight for w in s.style_weights] == [0.0] * (len(s.style_weights) - 1) + [1.0], "preset weights")
target = "Test Terrain"
common = dict(target=target, resolution=48, size_m=1200.0, height_m=1000.0, steps=4, roughness=0.7)  # 600 m relief: cliffs for rock

params = {"first": h.generate(addon, seed=3, **common)}
h.check(s.last_error == "", f"first generation failed: {s.last_error}")
np.save(out / "first.npy", h.positions(target))
h.results["labels_first"] = h.draw_panels(addon)
h.results["relief_first_m"] = float(np.ptp(h.positions(target)[:, 2]))
terrain_mesh = bpy.data.objects[target].data
masks = {}
for name in ("slope", "flow", "rock", "scree", "soil", "grass", "sand", "snow"):
    attribute = terrain_mesh.attributes.get(f"ws_{name}")
    h.check(attribute is not None and attribute.domain == "POINT" and attribute.data_type == "FLOAT",
            f"no float point attribute ws_{name}")
    if attribute is not None:
        values = np.empty(len(terrain_mesh.vertices), np.float32)
        attribute.data.foreach_get("value", values)
        masks[name] = values
np.savez(out / "masks.npz", **masks)
material = terrain_mesh.materials[0] if terrain_mesh.materials else None
h.results["material"] = material.name if material else None
h.results["material_attributes"] = sorted(n.attribute_name for n in material.node_tree.nodes
                                          if n.bl_idname == "ShaderNodeAttribute") if material else []
mesh_name = bpy.data.objects[target].data.name

params["second"] = h.generate(addon, seed=4, water_plane=True, **common)
water = bpy.data.objects.get(f"{target} Water")
h.results["water"] = None if water is None else {
    "parent": water.parent.name if water.parent else None,
    "corners": [tuple(v.co) for v in water.data.vertices], "material": water.data.materials[0].name}
np.save(out / "second.npy", h.positions(target))
h.check(bpy.data.objects[target].data.name == mesh_name, "second generation replaced the mesh datablock")
h.check(not [m.name for m in bpy.data.meshes if "(preview)" in m.name], "a preview mesh was left behind")

status = s.status
h.results["undo"] = str(bpy.ops.ed.undo())
np.save(out / "undone.npy", h.positions(target))
s = h.settings()  # undo reloads the scene
h.results["status_before_undo"], h.results["status_after_undo"] = status, s.status  # the session's, not undone
h.results["device_after_undo"] = s.device

params["third"] = h.generate(addon, seed=5, water_plane=False, erosion_stage="mature", **dict(common, resolution=20))
h.results["water_after_off"] = f"{target} Water" in bpy.data.objects
np.save(out / "third.npy", h.positions(target))
mesh = bpy.data.objects[target].data
h.check(not mesh.validate(), "mesh.validate() had to correct the generated mesh")
h.results["faces"] = len(mesh.polygons)
normals = np.empty(len(mesh.polygons) * 3, np.float32)
mesh.polygons.foreach_get("normal", normals)
h.check(bool((normals[2::3] > 0).all()), "some faces point down")

(out / "params.json").write_text(json.dumps(params))
bpy.ops.wm.save_as_mainfile(filepath=str(out / "scene.blend"))  # reopen.py opens it in a session with no backend
h.check(bpy.ops.preferences.addon_disable(module=h.PACKAGE) == {"FINISHED"}, "disable failed")
h.check(not hasattr(bpy.types.Scene, "worldsculpt"), "Scene.worldsculpt left registered after disable")
h.check(not bpy.app.timers.is_registered(addon.link.tick), "timer left registered after disable")
h.finish()
