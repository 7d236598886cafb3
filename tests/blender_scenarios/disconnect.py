"""Scenario: a cancelled job and a backend killed mid-job both leave the artist's mesh exactly as it was.

    python disconnect.py <zip> <backend address> <big resolution>

Prints KILL when a large job is running and waits for a line on stdin (the test kills the backend).
"""

from __future__ import annotations

import sys
import time

import bpy
import numpy as np

import _harness as h

zip_path, address, big = sys.argv[1], sys.argv[2], int(sys.argv[3])
addon = h.install(zip_path)
h.connect(addon, address)
s = h.settings()
target = "Artist Terrain"
h.generate(addon, target=target, resolution=32, seed=1, steps=4)
before = h.positions(target)
mesh_name = bpy.data.objects[target].data.name


def intact(what: str) -> None:
    obj = bpy.data.objects.get(target)
    h.check(obj is not None and obj.data.name == mesh_name, f"{what}: target lost its own mesh")
    h.check(np.array_equal(h.positions(target), before), f"{what}: vertex positions changed")
    h.check(not [m.name for m in bpy.data.meshes if "(preview)" in m.name], f"{what}: preview mesh left")


def previewing() -> bool:
    return bpy.data.objects[target].data.name != mesh_name


def start_big_job(seed: int) -> None:
    """Submit a job large enough to still be running after its first preview reached the object."""
    s.resolution, s.seed, s.steps = big, seed, 50
    h.check(bpy.ops.worldsculpt.generate() == {"FINISHED"}, "big generate did not return at once")
    h.pump(addon, lambda: previewing() or not s.running, 60.0, "the big job's first preview")
    h.check(s.running and previewing(), f"big job ended before it could be interrupted: {s.status}")


# Cancel mid-job, then keep pumping: nothing the backend still sends may reach the mesh.
start_big_job(seed=2)
bpy.ops.worldsculpt.cancel()
h.check(s.status == "Cancelled" and not s.running, f"after cancel: status {s.status!r}")
end = time.monotonic() + 1.5
while time.monotonic() < end:
    addon.link.tick()
    time.sleep(0.02)
intact("after cancel")

# Kill the backend mid-job.
start_big_job(seed=3)
print("KILL", flush=True)
sys.stdin.readline()
killed_at = time.monotonic()
longest = h.pump(addon, lambda: not s.connected and not s.running, 30.0, "the panel to show the disconnect")
h.results["disconnect_noticed_s"] = time.monotonic() - killed_at
h.results["longest_tick_after_kill_s"] = longest
h.results["status"], h.results["last_error"] = s.status, s.last_error
h.check("disconnect" in s.status.lower() or "lost" in s.status.lower(), f"status {s.status!r}")
h.check("disconnected" in s.last_error, f"last_error {s.last_error!r}")
h.check(longest < 0.25, f"a timer tick took {longest:.3f} s while the backend was dead")
h.check(not bpy.ops.worldsculpt.generate.poll(), "Generate still offered with a dead backend")
intact("after the backend died")
labels = h.draw_panels(addon)
h.check(s.last_error in labels and s.status in labels, f"panels do not show the error: {labels}")
h.finish()
