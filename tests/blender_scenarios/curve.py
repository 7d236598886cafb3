"""Scenario: a Bezier curve object across the terrain through Curve to Terrain as a ridge, a river and a cliff,
each followed by undo. Terrain comes from the learned generator of the backend given.

    python curve.py <zip> <backend address> <out dir> <curve json: [[row, col], ...]> <width cells>

The curve's control points sit over the given grid cells of a terrain moved away from the origin (the
operator maps world space onto the grid). Writes before.npy (terrain z), cells.npy (the polyline the
operator sent, in cells), after_<kind>.npy and undone_<kind>.npy; the pytest side checks them.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import bpy
import numpy as np

import _harness as h

KINDS = ("ridge", "river", "cliff")
zip_path, address, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
path, width_cells = json.loads(sys.argv[4]), float(sys.argv[5])
addon = h.install(zip_path)
h.connect(addon, address)
target = "Curve Terrain"
terrain = h.learned_terrain(addon, target, out)
s = h.settings()
cell = h.TERRAIN_CELL

curve = bpy.data.curves.new("Guide", "CURVE")
curve.dimensions = "3D"
spline = curve.splines.new("BEZIER")
spline.bezier_points.add(len(path) - 1)
for point, (row, col) in zip(spline.bezier_points, path):
    point.co = (*h.grid_to_world(row, col), 300.0)  # above the ground: z is ignored
    point.handle_left_type = point.handle_right_type = "AUTO"
guide = bpy.data.objects.new("Guide", curve)
bpy.context.scene.collection.objects.link(guide)
bpy.context.view_layer.update()
s.curve_object, s.curve_width, s.curve_strength = guide, width_cells * cell, 0.8
bpy.ops.ed.undo_push(message="curve settings")  # as the panel's widgets do: undo must not revert them

points = addon.curves.curve_points(guide, bpy.context.evaluated_depsgraph_get())
cells = np.array(addon.brushes._grid_points(terrain, (128, 128), cell, points, np.ones(len(points))))[:, :2]
np.save(out / "cells.npy", cells)
h.check(np.abs(cells[[0, -1]] - np.array(path)[[0, -1]]).max() < 1e-3, "curve ends are not on their grid cells")
h.check(len(cells) > len(path), "the evaluated curve has no more points than its control points")

latency = {}
for kind in KINDS:
    s = h.settings()  # undo reloads the scene: references taken before it are dangling
    s.curve_kind = kind
    start = time.perf_counter()
    h.check(bpy.ops.worldsculpt.curve_to_terrain() == {"FINISHED"}, f"{kind}: operator did not finish")
    latency[f"{kind}_operator_s"] = time.perf_counter() - start
    h.pump(addon, lambda: addon.link.link.stroke is None, 60.0, f"{kind} curve")
    latency[kind] = time.perf_counter() - start
    h.check(s.last_error == "", f"{kind}: {s.last_error}")
    h.check(s.brush_status.startswith(f"curve {kind}:"), f"{kind}: status {s.brush_status!r}")
    np.save(out / f"after_{kind}.npy", h.positions(target)[:, 2])
    h.results.setdefault("undo", []).append(str(bpy.ops.ed.undo()))
    np.save(out / f"undone_{kind}.npy", h.positions(target)[:, 2])
h.results["latency_s"] = latency

s = h.settings()
s.curve_object = None
h.check(not addon.curves.WSC_OT_curve_to_terrain.poll(bpy.context), "operator runs without a curve object")
addon.curves.WSC_PT_curve.draw(SimpleNamespace(layout=h.LayoutRecorder()), bpy.context)  # its props exist
h.draw_panels(addon)
h.finish()
