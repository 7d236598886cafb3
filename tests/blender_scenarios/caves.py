"""Scenario: generate a terrain, stream a region of cave chunks around the 3D cursor, carve a tunnel along a
stroke (undo it in Blender and redo it), fill part of it, regenerate it, switch to blocky meshes, then generated
chunks that read the world's memory.

    python caves.py <zip> <backend address> <out dir> [chunks across] [depth] [voxel size]

Checks the chunks' objects, their colours and that they sit in the moved terrain's frame; the pytest side
reads the world folder the edits were stored in.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from types import SimpleNamespace

import bpy
import numpy as np

import _harness as h

zip_path, address, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
size, depth, voxel = (int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]) if len(sys.argv) > 6 else (2, 1, "2")
addon = h.install(zip_path)
h.connect(addon, address)
s = h.settings()
caves = addon.caves.caves
plan = addon.caves_plan
TARGET = "Cave Terrain"
OFFSET = (50.0, -20.0, 5.0)
h.generate(addon, target=TARGET, resolution=65, size_m=1024.0, height_m=120.0, seed=3, generator="procedural")
h.check(s.last_error == "", f"generation failed: {s.last_error}")
terrain = bpy.data.objects[TARGET]
terrain.location = OFFSET
bpy.context.view_layer.update()
s.world_dir = str(out / "scene.world")
c = s.caves
c.size, c.depth, c.voxel_size, c.mesh_style = size, depth, voxel, "smooth"
c.source = "featureless"  # the checks below compare carved and regenerated ground with the plain ground
bpy.context.scene.cursor.location = (OFFSET[0] + 10.0, OFFSET[1] - 10.0, 0.0)


def run(operator, what: str, **kwargs) -> dict:
    """Run a Caves operator, pump until its jobs end; the time and the longest tick."""
    start = time.perf_counter()
    h.check(operator(**kwargs) == {"FINISHED"}, f"{what} operator did not finish at once ({c.status})")
    returned = time.perf_counter() - start
    longest = h.pump(addon, lambda: not caves.jobs, 120.0, what)
    h.check(c.status.startswith("Done"), f"{what}: {c.status}")
    return {"seconds": time.perf_counter() - start, "operator_return_s": returned, "longest_tick_s": longest,
            "status": c.status}


def chunk_objects() -> dict[tuple[int, ...], bpy.types.Object]:
    collection = bpy.data.collections.get(plan.COLLECTION)
    return {tuple(o[plan.CHUNK_KEY]): o for o in collection.objects} if collection else {}


def faces(keys=None) -> int:
    """Faces of the chunks (of ``keys`` only, if given: edits also mesh chunks beyond the region)."""
    return sum(len(o.data.polygons) for k, o in chunk_objects().items() if keys is None or k in keys)


h.results["region"] = run(bpy.ops.worldsculpt.caves_generate, "region")
chunks = chunk_objects()
h.results["chunks"] = len(chunks)
h.results["faces_region"] = faces()
h.check(len(chunks) >= size * size * depth, f"{len(chunks)} chunk objects")
some = next(o for o in chunks.values() if len(o.data.polygons))
h.check(plan.COLOR_ATTRIBUTE in some.data.attributes and some.data.attributes[plan.COLOR_ATTRIBUTE].domain == "POINT",
        "smooth chunks have no per-vertex colour")
h.check(some.data.materials[0].name == plan.MATERIAL_NAME, "chunk has no voxel material")
h.check(np.allclose(np.array(some.matrix_world), np.array(terrain.matrix_world)), "chunk not in the terrain's frame")
# the featureless ground's top surface is the terrain: world z of the chunk's highest vertices vs the terrain's
xyz = h.positions(some.name)
top = xyz[xyz[:, 2] > np.percentile(xyz[:, 2], 90)]
heights = h.positions(TARGET).reshape(65, 65, 3)
col = np.clip(np.rint((top[:, 0] + 512.0) / 16.0).astype(int), 0, 64)
row = np.clip(np.rint((512.0 - top[:, 1]) / 16.0).astype(int), 0, 64)
h.results["surface_gap_m"] = float(np.abs(top[:, 2] - heights[row, col, 2]).max())

# carve a tunnel 20 m under the cursor, east to west, through the stroke's points (world space)
ground = float(heights[32, 32, 2]) + OFFSET[2]
stroke = [{"name": "", "co": (OFFSET[0] - 60.0 + 30.0 * t, OFFSET[1] - 12.0, ground - 20.0 + 3 * t)} for t in range(5)]
c.radius = 5.0
h.results["carve"] = run(bpy.ops.worldsculpt.caves_edit, "carve", op="carve", points=stroke)
h.results["faces_carved"] = faces()
h.check(h.results["faces_carved"] > h.results["faces_region"], "carving added no tunnel surface")


def stored() -> list[str]:
    return sorted(p.name for p in (out / "scene.world" / "voxels" / "2m").glob("*.safetensors"))


# Blender's undo takes the carve back in the world too (a voxel_undo job remeshes it), its redo puts it back
h.results["stored_after_carve"] = stored()
for step in ("undo", "redo"):
    h.results[step] = str(getattr(bpy.ops.ed, step)())
    s = h.settings()  # undo reloads the scene: references taken before it are dangling
    c = s.caves
    h.check(bool(caves.jobs), f"{step}: no voxel_undo job was sent ({c.status})")
    h.pump(addon, lambda: not caves.jobs, 60.0, f"the world to follow the {step}")
    h.results[f"faces_after_{step}"] = faces()
    h.results[f"stored_after_{step}"] = stored()
    h.results[f"status_after_{step}"] = c.status
c.fill_material, c.radius = "ore_gold", 3.0
h.results["fill"] = run(bpy.ops.worldsculpt.caves_edit, "fill", op="fill", points=stroke[2:3])
gold = sum(int((np.array([a.value for a in o.data.attributes[plan.MATERIAL_ATTRIBUTE].data]) == 14).sum())
           for o in chunk_objects().values() if len(o.data.vertices))
h.check(gold > 0, "the fill left no gold")
c.radius = 9.0
h.results["regenerate"] = run(bpy.ops.worldsculpt.caves_edit, "regenerate", op="regenerate", points=stroke)
h.results["faces_regenerated"] = faces(chunks)
h.check(h.results["faces_regenerated"] == h.results["faces_region"], "regenerate did not restore the ground")

# a curve as the stroke: the active object
curve = bpy.data.curves.new("Tunnel", "CURVE")
spline = curve.splines.new("POLY")
spline.points.add(2)
for point, p in zip(spline.points, stroke[::2]):
    point.co = (*p["co"], 1.0)
curve_obj = bpy.data.objects.new("Tunnel", curve)
bpy.context.scene.collection.objects.link(curve_obj)
bpy.context.view_layer.objects.active = curve_obj
c.radius = 4.0
h.results["carve_curve"] = run(bpy.ops.worldsculpt.caves_edit, "carve along a curve", op="carve")
h.check(faces() > h.results["faces_region"], "carving along the curve added nothing")

c.mesh_style = "blocky"
h.results["blocky"] = run(bpy.ops.worldsculpt.caves_generate, "blocky region")
blocky = next(o for o in chunk_objects().values() if len(o.data.polygons))
h.check(all(len(p.vertices) == 4 for p in blocky.data.polygons), "blocky chunks are not quads")
h.check(blocky.data.attributes[plan.MATERIAL_ATTRIBUTE].domain == "FACE", "blocky materials are not per face")
h.check(blocky.data.attributes[plan.COLOR_ATTRIBUTE].domain == "CORNER", "blocky colours are not per face corner")
h.results["faces_blocky"] = faces(chunks)
c.coarse_far, c.lod_radius = True, 0  # every chunk but the cursor's a level coarser
h.results["blocky_lod"] = run(bpy.ops.worldsculpt.caves_generate, "blocky region, coarser far chunks")
h.results["faces_blocky_lod"] = faces(chunks)
c.mesh_style = "smooth"
h.results["smooth_lod"] = run(bpy.ops.worldsculpt.caves_generate, "smooth region, coarser far chunks")
h.results["faces_smooth_lod"] = faces(chunks)
c.coarse_far = False
h.results["smooth_full"] = run(bpy.ops.worldsculpt.caves_generate, "smooth region at full detail")
h.results["faces_smooth"] = faces(chunks)
c.mesh_style = "blocky"

s.export_dir, s.export_name = str(out / "export"), "scene"
h.results["export"] = run(bpy.ops.worldsculpt.caves_export, "export")
h.check("scene_caves.vox" in c.status and "scene_caves.glb" in c.status, f"export status {c.status}")

# a region asked for and stopped at once: the backend stops, the panel says so, the shown chunks stay
before_stop = len(chunk_objects())
h.check(bpy.ops.worldsculpt.caves_generate() == {"FINISHED"}, "region for the stop did not start")
h.check(bpy.ops.worldsculpt.caves_stop() == {"FINISHED"}, "stop failed")
h.check(not caves.jobs and c.status == "Stopped", f"after stop: {c.status}")
for _ in range(25):  # whatever the backend still sends about the stopped job is ignored
    addon.link.tick()
    time.sleep(0.02)
h.check(c.status == "Stopped", f"a stopped job's late messages changed the status: {c.status}")
h.check(len(chunk_objects()) == before_stop, "stopping removed chunks")

# generated chunks reading the world's memory, which the carves above wrote: the panel's switch reaches the job
c.source, c.memory, c.size, c.depth = "learned", True, 1, 1
h.results["memory_region"] = run(bpy.ops.worldsculpt.caves_generate, "generated chunks with the world's memory")

c.size = 8
c.depth = 8
try:  # headless Blender turns the operator's error report into an exception
    refused = bpy.ops.worldsculpt.caves_generate() == {"CANCELLED"}
except RuntimeError:
    refused = True
h.check(refused, "a too-big region was not refused")
h.results["too_big_status"] = c.status


class Recorder(h.LayoutRecorder):
    def operator(self, idname: str, **kwargs):
        super().operator(idname, **kwargs)
        return SimpleNamespace()


layout = Recorder()
addon.caves.WSC_PT_caves.draw(SimpleNamespace(layout=layout), bpy.context)
h.results["labels"] = layout.labels
h.finish()
