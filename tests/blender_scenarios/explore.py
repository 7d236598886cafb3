"""Scenario: explore mode streams world tiles around the scene camera as it moves.

    python explore.py <zip> <backend address> <out dir>

Saves the .blend as <out dir>/scene.blend, so the world goes to <out dir>/scene.world. Prints KILL when a
job is in flight (the test kills the backend and answers a line), then RESTART (the test starts a new
backend on the same world and answers its address). Writes tiles_before_kill.npz (tile positions) and
raw.npz (the heights received for the lod-0 tiles before and after the restart).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import bpy
import numpy as np
from mathutils import Matrix

import _harness as h

zip_path, address, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
addon = h.install(zip_path)
explorer = addon.explore.explorer
plan = addon.explore_plan
h.connect(addon, address)
s = h.settings()
s.style_preset = "alpine"
s.seed, s.steps, s.guidance, s.height_m = 3, 1, 1.0, 600.0  # tiny models, one base step: a fast test
s.explore_near, s.explore_far, s.explore_max_tiles, s.explore_follow = 0, 1, 9, "CAMERA"

try:
    bpy.ops.worldsculpt.explore()  # the operator reports an error, which a script call raises
    h.check(False, "explore started with an unsaved .blend and no folder")
except RuntimeError as exc:
    h.check("save the .blend" in str(exc) and "save the .blend" in s.explore_status, f"unsaved: {s.explore_status!r}")
(out / "a_file").write_text("not a world")
s.world_dir = str(out / "a_file")  # refused by the backend: explore stops and says why, without retrying
h.check(bpy.ops.worldsculpt.explore() == {"FINISHED"}, "explore did not start on a chosen folder")
h.pump(addon, lambda: not addon.explore.explorer.active, 30.0, "explore to stop on a bad world folder")
h.results["bad_folder_status"] = s.explore_status
s.world_dir = ""
bpy.ops.wm.save_as_mainfile(filepath=str(out / "scene.blend"))
s = h.settings()
camera = bpy.data.objects.new("Explore Camera", bpy.data.cameras.new("Explore Camera"))
bpy.context.scene.collection.objects.link(camera)
bpy.context.scene.camera = camera


def move(x: float, y: float) -> None:
    camera.location = (x, y, 300.0)
    bpy.context.view_layer.update()  # matrix_world follows (the UI does this between ticks)


move(1.0, -1.0)  # inside tile (0, 0), near its north-west corner


def tick_until(until, timeout: float, what: str) -> None:
    longest = h.pump(addon, until, timeout, what)
    h.results["longest_tick_s"] = max(h.results.get("longest_tick_s", 0.0), longest)
    if not until():
        h.check(False, f"{what}: explore status {h.settings().explore_status!r}, shown {explorer.shown}")


def settled() -> bool:
    want = plan.wanted(camera.location.x, camera.location.y, explorer.tile_m or 1.0, explorer.rings)
    return explorer.tile_m is not None and plan.next_request(want, explorer.shown, 1) is None


def tile_xyz(coords) -> np.ndarray:
    obj = bpy.data.objects[explorer.names[coords]]
    h_, w_ = obj.data[addon.mesh.SHAPE_KEY]
    h.check(obj.matrix_world == Matrix.Identity(4), f"tile {coords} is not at the origin")
    return h.positions(obj.name).reshape(h_, w_, 3)


def snapshot() -> dict[str, np.ndarray]:
    return {f"{x},{y}": tile_xyz((x, y)) for x, y in explorer.shown}


start = time.perf_counter()
h.check(bpy.ops.worldsculpt.explore() == {"FINISHED"}, "explore did not start")
h.results["operator_return_s"] = time.perf_counter() - start
h.check(explorer.active and explorer.world == str((out / "scene.world").resolve()), f"world {explorer.world!r}")
tick_until(lambda: len(explorer.shown) >= 1, 120.0, "the first tile")
h.results["progress_at_first_tile"] = [label for label in h.draw_panels(addon) if label.startswith("[progress")]
tick_until(settled, 120.0, "the first 9 tiles")
h.results["progress_settled"] = h.settings().explore_progress
h.results["first_arrivals"] = [[list(c), lod] for c, lod, _ in explorer.arrivals]
L = explorer.tile_m
h.results["tile_m"] = L

# Fly one tile east: the new centre is upgraded to lod 0, a new column comes in, the west one goes.
move(1.5 * L, -0.5 * L)
tick_until(lambda: explorer.request is not None and explorer.request.lod == 0, 5.0, "the upgrade job")
upgrade = explorer.request.job_id
move(40.5 * L, -0.5 * L)  # too far to be worth finishing: cancelled at once
addon.link.tick()
h.check(explorer.request is not None and explorer.request.job_id != upgrade and explorer.request.tiles == [(40, 0)],
        f"a job the view left behind was not cancelled: {explorer.request}")
move(1.5 * L, -0.5 * L)
tick_until(settled, 120.0, "the tiles after flying east")
h.results["tiles_after_move"] = sorted([list(c), lod] for c, lod in explorer.shown.items())
h.results["arrivals_after_move"] = [[list(c), lod] for c, lod, _ in explorer.arrivals[9:]]
h.results["tile_objects"] = sorted(o.name for o in bpy.data.collections[addon.explore.COLLECTION].objects)

# Every pair of neighbours shares its edge vertices, bit for bit (at coinciding vertices across levels).
pairs, mismatched, gap = 0, 0, 0.0
for (x, y), lod in explorer.shown.items():
    for b in ((x + 1, y), (x, y + 1)):
        if b not in explorer.shown:
            continue
        a_xyz, b_xyz = tile_xyz((x, y)), tile_xyz(b)
        ea, eb = (a_xyz[:, -1], b_xyz[:, 0]) if b[1] == y else (a_xyz[-1, :], b_xyz[0, :])
        sa, sb = max(1, (len(ea) - 1) // (len(eb) - 1)), max(1, (len(eb) - 1) // (len(ea) - 1))
        pairs += 1
        mismatched += not np.array_equal(ea[::sa], eb[::sb])
        if sa != sb:  # a fine edge against a coarse one: how far its in-between vertices leave the coarse line
            fine, coarse = (ea, eb) if sa > 1 else (eb, ea)
            step = max(sa, sb)
            line = np.interp(np.arange(len(fine)), np.arange(0, len(fine), step), coarse[:, 2])
            gap = max(gap, float(np.abs(fine[:, 2] - line).max()))
h.results["edge_pairs"], h.results["edge_pairs_mismatched"], h.results["lod_crack_max_m"] = pairs, mismatched, gap
raw_before = {f"{x},{y}": np.array(explorer.heights[(x, y)][1]) for (x, y), lod in explorer.shown.items() if lod == 0}

# Kill the backend while a job is in flight: the tiles stay, the panels say disconnected.
move(1.5 * L, -1.5 * L)  # over (1, 1): upgraded to lod 0
tick_until(lambda: explorer.request is not None and explorer.request.tiles == [(1, 1)], 5.0, "the (1, 1) job")
before_kill = snapshot()
np.savez(out / "tiles_before_kill.npz", **before_kill)
print("KILL", flush=True)
sys.stdin.readline()
killed = time.monotonic()
longest = h.pump(addon, lambda: not s.connected, 30.0, "the disconnect")
h.results["disconnect_noticed_s"] = time.monotonic() - killed
h.results["longest_tick_after_kill_s"] = longest
for _ in range(20):
    addon.link.tick()
h.results["status_after_kill"], h.results["explore_status_after_kill"] = s.status, s.explore_status
h.check(explorer.active, "a dead backend stopped explore mode")
after_kill = snapshot()
h.check(after_kill.keys() == before_kill.keys() and all(np.array_equal(after_kill[k], before_kill[k])
                                                        for k in before_kill), "tiles changed after the kill")
labels = h.draw_panels(addon)
h.check(s.explore_status in labels, f"the explore panel does not show {s.explore_status!r}: {labels}")

# A new backend on the same world: explore resumes; stored tiles come back as they were.
print("RESTART", flush=True)
bpy.context.preferences.addons[h.PACKAGE].preferences.address = sys.stdin.readline().strip()
h.check(bpy.ops.worldsculpt.connect() == {"FINISHED"}, "reconnect failed")
tick_until(lambda: s.connected and explorer.request is not None, 30.0, "explore to resume on the new backend")
h.results["resumed_with"] = [list(t) for t in explorer.request.tiles]
h.check(bpy.ops.worldsculpt.explore_stop(remove_tiles=True) == {"FINISHED"}, "stop failed")
h.check(not explorer.active and not bpy.data.collections[addon.explore.COLLECTION].objects, "tiles left after stop")
s.explore_near = s.explore_far = 0
raw_after = {}
for tile in raw_before:
    x, y = (int(v) for v in tile.split(","))
    move((x + 0.5) * L, -(y + 0.5) * L)
    if not explorer.active:
        h.check(bpy.ops.worldsculpt.explore() == {"FINISHED"}, "explore did not restart")
    tick_until(lambda: (x, y) in explorer.shown, 30.0, f"tile {tile} from the world folder")
    raw_after[tile] = np.array(explorer.heights[(x, y)][1])
np.savez(out / "raw.npz", **{f"before {k}": v for k, v in raw_before.items()}, **{f"after {k}": v for k, v in raw_after.items()})
h.check(bpy.ops.worldsculpt.explore_stop() == {"FINISHED"}, "stop failed")
h.results["final_status"] = s.explore_status
h.finish()
