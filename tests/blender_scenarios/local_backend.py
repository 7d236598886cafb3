"""Scenario: the add-on starts its own backend (`worldsculpt serve`), generates, and stops it; starts it again
and kills it: the add-on sees its process exit at once (no heartbeat timeout) and says how it ended.

    python local_backend.py <zip> <address> <the worldsculpt command>
"""

from __future__ import annotations

import os
import signal
import sys
import time

import bpy

import _harness as h

zip_path, address, command = sys.argv[1:4]
addon = h.install(zip_path)
prefs = bpy.context.preferences.addons[h.PACKAGE].preferences
prefs.address, prefs.backend_command = address, command
s = h.settings()
h.check(bpy.ops.worldsculpt.start_backend() == {"FINISHED"}, "start_backend failed")
process = addon.local_backend.backend.process
h.check(process is not None and process.poll() is None, "no backend process after start_backend")
h.pump(addon, lambda: s.connected, 60.0, "the local backend to answer")
h.generate(addon, target="Local", resolution=16, seed=9, steps=2)
h.check("Local" in bpy.data.objects and len(bpy.data.objects["Local"].data.vertices) == 16 * 16,
        f"no 16x16 terrain from the local backend: {s.status} {s.last_error}")
# Generate while the backend is frozen (SIGSTOP): the operator returns at once, the job runs once it thaws.
os.kill(process.pid, signal.SIGSTOP)
try:
    start = time.perf_counter()
    h.check(bpy.ops.worldsculpt.generate() == {"FINISHED"}, f"generate to a frozen backend: {s.last_error}")
    h.results["submit_to_frozen_s"] = time.perf_counter() - start
finally:
    os.kill(process.pid, signal.SIGCONT)
h.pump(addon, lambda: not s.running, 60.0, "the job sent while the backend was frozen")
h.results["status_after_thaw"] = s.status
h.check(bpy.ops.worldsculpt.stop_backend() == {"FINISHED"}, "stop_backend failed")
h.check(process.poll() is not None, "backend process still running after stop_backend")
h.check(not s.connected, "still shown connected after stopping the backend")

h.check(bpy.ops.worldsculpt.start_backend() == {"FINISHED"}, "second start_backend failed")
h.pump(addon, lambda: s.connected, 60.0, "the restarted local backend to answer")
addon.local_backend.backend.process.kill()
killed = time.monotonic()
h.pump(addon, lambda: not s.connected, 10.0, "the killed backend to show")
h.results["exit_noticed_s"] = time.monotonic() - killed
h.results["status_after_kill"] = s.status
h.finish()
