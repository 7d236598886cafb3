"""Scenario: every brush kind through the operator's non-interactive path (an explicit ``stroke``),
each followed by undo. Terrain comes from the learned generator of the backend given.

    python brush.py <zip> <backend address> <out dir> <stroke json: [[row, col, pressure], ...]> <radius cells>

Writes before.npy (terrain z), after_<kind>.npy and undone_<kind>.npy; the pytest side checks them.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import bpy
import numpy as np

import _harness as h

KINDS = ("raise", "lower", "smooth", "flatten", "ridge", "valley", "erode", "regenerate", "style_paint")
zip_path, address, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
path, radius_cells = json.loads(sys.argv[4]), float(sys.argv[5])
addon = h.install(zip_path)
h.connect(addon, address)
target = "Brush Terrain"
h.learned_terrain(addon, target, out)  # the stroke is in world space: the operator maps it onto the grid
s = h.settings()
cell = h.TERRAIN_CELL
stroke = h.stroke_elements([(*h.grid_to_world(r, c), p) for r, c, p in path])
s.brush_radius, s.brush_strength, s.brush_style = radius_cells * cell, 0.8, "desert_dunes"
s.edit_log_dir = str(out / "world")
bpy.ops.ed.undo_push(message="brush settings")  # as the panel's widgets do: undo must not revert them
latency = {}
for kind in KINDS:
    s = h.settings()  # undo reloads the scene: references taken before it are dangling
    s.brush_kind = kind
    start = time.perf_counter()
    h.check(bpy.ops.worldsculpt.brush(stroke=stroke) == {"FINISHED"}, f"{kind}: brush operator did not finish")
    h.pump(addon, lambda: addon.link.link.stroke is None, 60.0, f"{kind} stroke")
    latency[kind] = time.perf_counter() - start
    h.check(s.last_error == "", f"{kind}: {s.last_error}")
    np.save(out / f"after_{kind}.npy", h.positions(target)[:, 2])
    h.results.setdefault("undo", []).append(str(bpy.ops.ed.undo()))
    np.save(out / f"undone_{kind}.npy", h.positions(target)[:, 2])
    h.pump(addon, lambda: not addon.link.link.edit_log_jobs, 30.0, f"{kind}: the world's edit log to follow the undo")
h.results["latency_s"] = latency
# the brush circle, and inside it the ring a kind's shape fills (the backend's share): raise shapes half its circle
h.results["cursor_radii"] = {kind: addon.brushes.cursor_radii(kind, 100.0) for kind in ("raise", "smooth")}
h.results["status_after_undos"] = h.settings().brush_status

# a stroke undone and redone: the world's log takes it out and puts it back, its tile follows
h.settings().brush_kind = "raise"
h.check(bpy.ops.worldsculpt.brush(stroke=stroke) == {"FINISHED"}, "last raise did not start")
h.pump(addon, lambda: addon.link.link.stroke is None, 60.0, "last raise")
np.save(out / "after_last.npy", h.positions(target)[:, 2])
for step in (bpy.ops.ed.undo, bpy.ops.ed.redo):
    h.results.setdefault("undo_redo", []).append(str(step()))
    h.pump(addon, lambda: not addon.link.link.edit_log_jobs, 30.0, f"the edit log to follow {step.idname()}")
np.save(out / "redone.npy", h.positions(target)[:, 2])
h.results["status_after_redo"] = h.settings().brush_status
h.draw_panels(addon)  # every property and operator the panels show exists
h.finish()
