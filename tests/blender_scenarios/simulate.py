"""Scenario: the Simulate panel erodes the whole terrain (surrogate), undo, then only a selection (physics),
then a long run cancelled mid-way. Terrain from the learned generator, 128² at 30 m cells (the surrogate's).

    python simulate.py <zip> <backend address> <out dir>

Writes before.npy, whole.npy, undone.npy, selection.npy, selected.npy, cancelled.npy (terrain z); the pytest
side checks them; RESULTS carries the mesh attributes and the previews seen.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import bpy
import numpy as np

import _harness as h

zip_path, address, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
addon = h.install(zip_path)
h.connect(addon, address)
target = "Sim Terrain"
h.settings().style_preset = "alpine"
h.generate(addon, timeout=120, target=target, resolution=128, size_m=127 * 30.0, height_m=400.0, seed=3,
           generator="diffusion")
h.check(h.settings().last_error == "", f"generation failed: {h.settings().last_error}")
before = h.positions(target)[:, 2].copy()
np.save(out / "before.npy", before)
sim = bpy.context.scene.worldsculpt_simulate
sim.scope, sim.steps, sim.engine = "ALL", 10, "surrogate"
bpy.ops.ed.undo_push(message="simulate settings")

# -- the whole terrain, by the surrogate, previews counted ----------------------------------------------
writes = []  # every window the link writes into the mesh: previews, then the result
original_write = addon.mesh.write_window
addon.mesh.write_window = lambda obj, window, heights: (writes.append(window), original_write(obj, window, heights))
h.check(bpy.ops.worldsculpt.simulate() == {"FINISHED"}, "simulate operator did not finish")
h.pump(addon, lambda: addon.link.link.stroke is None, 120.0, "simulation")
previews = writes[:-1]
h.check(h.settings().last_error == "", f"simulate: {h.settings().last_error}")
h.results["previews_seen"] = len(previews)
np.save(out / "whole.npy", h.positions(target)[:, 2])
mesh = bpy.data.objects[target].data
h.results["attributes"] = [a.name for a in mesh.attributes if a.name.startswith("ws_")]
flow = np.empty(len(mesh.vertices), np.float32)
mesh.attributes["ws_flow"].data.foreach_get("value", flow)
h.results["flow_range"] = [float(flow.min()), float(flow.max())]
h.results["undo"] = str(bpy.ops.ed.undo())
np.save(out / "undone.npy", h.positions(target)[:, 2])

# -- only the selection, by physics ----------------------------------------------------------------------
obj = bpy.data.objects[target]
rows, cols = np.mgrid[0:128, 0:128]
selected = np.hypot(rows - 64, cols - 60) <= 30
obj.data.vertices.foreach_set("select", selected.ravel())
sim = bpy.context.scene.worldsculpt_simulate
sim.scope, sim.steps, sim.engine = "SELECTION", 3, "physics"
h.check(bpy.ops.worldsculpt.simulate() == {"FINISHED"}, "simulate (selection) did not finish")
h.pump(addon, lambda: addon.link.link.stroke is None, 120.0, "selection simulation")
np.save(out / "selection.npy", h.positions(target)[:, 2])
np.save(out / "selected.npy", selected.ravel())
bpy.ops.ed.undo()

# -- a long run, cancelled --------------------------------------------------------------------------------
sim = bpy.context.scene.worldsculpt_simulate
sim.scope, sim.steps, sim.engine = "ALL", 80, "physics"
h.check(bpy.ops.worldsculpt.simulate() == {"FINISHED"}, "simulate (long) did not finish")
h.check(addon.simulate.WSC_OT_simulate_cancel.poll(bpy.context), "cancel not offered while simulating")
writes.clear()
h.pump(addon, lambda: len(writes) > 0, 60.0, "the first preview")
h.check(bpy.ops.worldsculpt.simulate_cancel() == {"FINISHED"}, "cancel did not finish")
h.check(addon.link.link.stroke is None, "the simulation is still in flight after cancel")
np.save(out / "cancelled.npy", h.positions(target)[:, 2])

addon.simulate.WSC_PT_simulate.draw(SimpleNamespace(layout=h.LayoutRecorder()), bpy.context)  # its props exist
h.draw_panels(addon)
h.finish()
