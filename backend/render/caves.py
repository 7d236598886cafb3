"""Caves in headless Blender through the add-on, as an artist makes them: Generate, a Caves region, voxel brushes.

    python -m backend.render.caves <backend address> <config json>

Run as a subprocess (bpy is a whole Blender, one per process) by ``benchmarks/bench_voxels.py`` and
``reports/make_caves_render.py``. Registers the add-on from this checkout, connects, runs Generate with
``config["generate"]`` (Scene.worldsculpt values), sets ``config["caves"]`` (Scene.worldsculpt.caves values)
and the 3D cursor (``config["cursor"]``, world metres), runs Generate Caves and then each of
``config["strokes"]`` ({"op", "points": [[x, y, z], ...] world metres, "radius", "material"}; z above the
ground under the 3D cursor when ``config["strokes_from_ground"]``) through the voxel brush. Headless Blender runs no timers, so this calls the add-on's timer callback itself at the
intervals it asks for. Times each job from the operator call: when its first chunk reached Blender and when
its last did. With ``config["save"]`` (a folder) it writes the terrain's heights there (terrain.npy).
With ``config["render"]`` ({"out", "width", "height"}) renders the scene (Workbench, the
chunks' palette colours) from a camera looking at the caves' region. Prints ``RESULTS <json>``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import bpy
import numpy as np
from mathutils import Vector

import blender_addon
from blender_addon import caves as caves_module
from blender_addon import link as link_module
from blender_addon import mesh
from backend.render.sculpt import connect_and_generate, run_timer


def timed_job(operator: Any, **kwargs: Any) -> dict[str, Any]:
    """Run a Caves operator and the timer until its job ends; seconds to the first and the last chunk."""
    caves, shown = caves_module.caves, []
    place = caves._place

    def timed_place(*args: Any, **kwargs: Any) -> bool:
        placed = place(*args, **kwargs)
        shown.append(time.perf_counter())
        return placed

    caves._place = timed_place
    start = time.perf_counter()
    if operator(**kwargs) != {"FINISHED"}:
        raise RuntimeError(f"operator did not start: {bpy.context.scene.worldsculpt.caves.status}")
    returned = time.perf_counter() - start
    longest = 0.0
    deadline = time.monotonic() + 600.0
    while caves.jobs:
        if time.monotonic() > deadline:
            raise TimeoutError(f"caves job still running: {bpy.context.scene.worldsculpt.caves.status}")
        time.sleep(link_module.TICK_BUSY_S)
        tick = time.perf_counter()
        link_module.tick()
        longest = max(longest, time.perf_counter() - tick)
    del caves._place
    status = bpy.context.scene.worldsculpt.caves.status
    if not status.startswith("Done") or not shown:
        raise RuntimeError(f"caves job failed: {status}")
    return {"operator_return_s": returned, "first_chunk_s": shown[0] - start, "all_chunks_s": shown[-1] - start,
            "chunks_shown": len(shown), "longest_tick_s": longest, "status": status}


def make_caves(address: str, config: dict[str, Any]) -> dict[str, Any]:
    s = connect_and_generate(address, config["generate"])
    s.world_dir = config["world"]
    for key, value in config["caves"].items():
        setattr(s.caves, key, value)
    bpy.context.scene.cursor.location = config["cursor"]
    results: dict[str, Any] = {"region": timed_job(bpy.ops.worldsculpt.caves_generate), "strokes": []}
    collection = bpy.data.collections[caves_module.plan.COLLECTION]
    results["region_chunks"] = sorted(list(o[caves_module.plan.CHUNK_KEY]) for o in collection.objects)
    terrain = bpy.data.objects[s.target]
    if config.get("save"):
        np.save(Path(config["save"]) / "terrain.npy", mesh.read_heights(terrain)[0])
    ground = ground_at_cursor(terrain) if config.get("strokes_from_ground") else 0.0
    results["ground_m"] = ground
    for stroke in config.get("strokes", []):
        s.caves.radius = stroke["radius"]
        s.caves.fill_material = stroke.get("material", "rock")
        points = [{"name": "", "co": (x, y, z + ground)} for x, y, z in stroke["points"]]
        results["strokes"].append(timed_job(bpy.ops.worldsculpt.caves_edit, op=stroke["op"], points=points))
    results["generator"] = s.status
    if config.get("render"):
        results["render"] = render(config["render"], bpy.data.objects[s.target])
    link_module.link.close()
    return results


def ground_at_cursor(terrain: bpy.types.Object) -> float:
    """World z of the terrain sample nearest the 3D cursor."""
    xyz = np.empty(len(terrain.data.vertices) * 3, np.float32)
    terrain.data.attributes["position"].data.foreach_get("vector", xyz)
    xyz = xyz.reshape(-1, 3)
    local = terrain.matrix_world.inverted() @ bpy.context.scene.cursor.location
    nearest = int(np.argmin((xyz[:, 0] - local.x) ** 2 + (xyz[:, 1] - local.y) ** 2))
    return float((terrain.matrix_world @ Vector(xyz[nearest].tolist())).z)


def render(options: dict[str, Any], terrain: bpy.types.Object) -> list[str]:
    """Workbench renders (palette colours) of the caves' region, one per ``options["views"]`` entry: {"out",
    "direction": camera direction from the region's centre, "distance": in region diagonals, "hide_terrain"}.
    The terrain is lowered by ``options["terrain_drop_m"]`` so that it does not flicker through the region's
    ground, which lies on it. A view from below with the terrain hidden is a cutaway: the region's solid is not
    meshed, so its open walls show the tunnels."""
    scene = bpy.context.scene
    chunks = bpy.data.collections[caves_module.plan.COLLECTION].objects
    corners = [o.matrix_world @ Vector(c) for o in chunks if len(o.data.vertices) for c in o.bound_box]
    low = Vector([min(c[i] for c in corners) for i in range(3)])
    high = Vector([max(c[i] for c in corners) for i in range(3)])
    centre, span = (low + high) / 2, (high - low).length
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.render.resolution_x, scene.render.resolution_y = options.get("width", 960), options.get("height", 640)
    scene.render.resolution_percentage = 100
    shading = scene.display.shading
    shading.light, shading.color_type = "STUDIO", "VERTEX"
    shading.show_shadows, shading.show_cavity, shading.show_backface_culling = True, True, False
    scene.world = scene.world or bpy.data.worlds.new("world")
    scene.world.color = (0.55, 0.65, 0.8)
    positions = terrain.data.attributes["position"].data  # the mesh, not the object: the chunks are its children
    xyz = np.empty(len(positions) * 3, np.float32)
    positions.foreach_get("vector", xyz)
    xyz[2::3] -= options.get("terrain_drop_m", 0.0)
    positions.foreach_set("vector", xyz)
    terrain.data.update()
    camera = bpy.data.objects.new("caves camera", bpy.data.cameras.new("caves camera"))
    scene.collection.objects.link(camera)
    scene.camera = camera
    camera.data.lens, camera.data.clip_end = 35, span * 20
    written = []
    for view in options["views"]:
        terrain.hide_render = view.get("hide_terrain", False)
        direction = Vector(view["direction"]).normalized()
        camera.location = centre + direction * span * view.get("distance", 1.1)
        camera.rotation_euler = (-direction).to_track_quat("-Z", "Y").to_euler()
        scene.render.filepath = str(Path(view["out"]).resolve())
        bpy.ops.render.render(write_still=True)
        written.append(scene.render.filepath)
    return written


def main() -> None:
    blender_addon.register()
    print("RESULTS " + json.dumps(make_caves(sys.argv[1], json.loads(sys.argv[2]))), flush=True)
    sys.stderr.flush()
    os._exit(0)  # bpy 4.2 as a module can crash while finalising once an add-on ran; the work is done


if __name__ == "__main__":
    main()
