"""Scenario: the artist's style loop on terrain of the shipped learned models. A Style Paint stroke of desert
dunes, Restyle Selection on selected vertices (entered from Edit Mode) and on a vertex group, each undone;
reference style from a terrain object and from heightmap files, with bad files.

    python style.py <zip> <backend address> <out dir> <reference .npy (metres, 30 m cells)> <reference .png> <relief m>

Writes before.npy, painted.npy, restyled_<how>.npy and undone_<name>.npy (terrain z) and prints RESULTS;
the pytest side measures them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import bpy
import numpy as np

import _harness as h

RES, CELL = 256, 30.0
PAINT = [[128.0, 60.0, 1.0], [128.0, 196.0, 1.0]]  # west to east across the middle, [row, col, pressure]
PAINT_RADIUS = 60.0  # cells
zip_path, address, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
reference_npy, reference_png, reference_relief = sys.argv[4], sys.argv[5], float(sys.argv[6])
addon = h.install(zip_path)
h.connect(addon, address)
target = "Style Terrain"
h.settings().style_preset = "alpine"
h.generate(addon, timeout=120, target=target, resolution=RES, size_m=CELL * (RES - 1), height_m=1500.0, seed=3,
           generator="diffusion")
h.check(h.settings().last_error == "", f"generation failed: {h.settings().last_error}")
obj = bpy.data.objects[target]
bpy.context.view_layer.objects.active = obj
before = h.positions(target)[:, 2].copy()
np.save(out / "before.npy", before)
s = h.settings()
s.edit_log_dir = str(out / "world")
bpy.ops.ed.undo_push(message="style settings")  # as the panel's widgets do: undo must not revert them


def z() -> np.ndarray:
    return h.positions(target)[:, 2].copy()


def wait_edit(what: str) -> None:
    h.pump(addon, lambda: addon.link.link.stroke is None, 90.0, what)
    h.check(h.settings().last_error == "", f"{what}: {h.settings().last_error}")


def run(operator) -> str:
    """The operator's result; an operator that reports an error raises in background mode: its message."""
    try:
        return str(operator())
    except RuntimeError as exc:
        return f"error: {exc}"


def select(obj: bpy.types.Object, vertices: np.ndarray) -> None:
    """Select these vertices only, edges and faces included (Edit Mode flushes a face selection to its vertices)."""
    obj.data.edges.foreach_set("select", np.zeros(len(obj.data.edges), bool))
    obj.data.polygons.foreach_set("select", np.zeros(len(obj.data.polygons), bool))
    obj.data.vertices.foreach_set("select", vertices.ravel())


def undo(name: str) -> None:
    h.results.setdefault("undo", []).append(str(bpy.ops.ed.undo()))
    np.save(out / f"undone_{name}.npy", z())
    h.pump(addon, lambda: not addon.link.link.edit_log_jobs, 30.0, f"the edit log to follow undoing {name}")


# -- style paint: a stroke of desert dunes across the alpine terrain ------------------------------
s.brush_kind, s.brush_style, s.brush_strength = "style_paint", "desert_dunes", 1.0
s.brush_radius = PAINT_RADIUS * CELL
stroke = h.stroke_elements([((c - (RES - 1) / 2) * CELL, ((RES - 1) / 2 - r) * CELL, p) for r, c, p in PAINT])
h.check(bpy.ops.worldsculpt.brush(stroke=stroke) == {"FINISHED"}, "style paint did not start")
wait_edit("style paint")
np.save(out / "painted.npy", z())
undo("painted")

# -- restyle: selected vertices, entered from Edit Mode ------------------------------------------
rows, cols = np.mgrid[:RES, :RES]
selected = np.hypot(rows - 90, cols - 170) <= 30
obj = bpy.data.objects[target]  # undo reloads the file's data: references taken before it are dangling
select(obj, selected)
with bpy.context.temp_override(active_object=obj, object=obj):
    bpy.ops.object.mode_set(mode="EDIT")
h.settings().restyle_group, h.settings().restyle_blend = "", 8 * CELL
h.check(bpy.ops.worldsculpt.restyle_selection() == {"FINISHED"}, f"restyle: {h.settings().brush_status}")
h.results["mode_after_restyle"] = bpy.data.objects[target].mode
wait_edit("restyle selection")
np.save(out / "restyled_selection.npy", z())
np.save(out / "selection.npy", selected)
undo("selection")

# -- restyle: a vertex group, keeping the large forms --------------------------------------------
obj = bpy.data.objects[target]
group_region = np.hypot(rows - 180, cols - 80) <= 25
group = obj.vertex_groups.new(name="patch")
group.add(np.flatnonzero(group_region.ravel()).tolist(), 1.0, "REPLACE")
select(obj, np.zeros(RES * RES, bool))
bpy.ops.ed.undo_push(message="vertex group")
s = h.settings()
s.restyle_group, s.restyle_keep_forms = "patch", True
h.check(bpy.ops.worldsculpt.restyle_selection() == {"FINISHED"}, f"group restyle: {h.settings().brush_status}")
wait_edit("restyle vertex group")
np.save(out / "restyled_group.npy", z())
np.save(out / "group.npy", group_region)
kept = np.zeros(RES * RES, bool)
bpy.data.objects[target].data.vertices.foreach_get("select", kept)
h.results["selection_kept"] = not kept.any()  # the artist's (empty) selection is as it was
undo("group")
h.settings().restyle_group = "nowhere"
h.results["missing_group"] = run(bpy.ops.worldsculpt.restyle_selection)
h.results["missing_group_status"] = h.settings().brush_status


# -- reference style from an object and from files -----------------------------------------------
def reference(operator, **values) -> str:
    s = h.settings()
    for key, value in values.items():
        setattr(s, key, value)
    s.style_status = ""
    if run(operator) == "{'FINISHED'}":
        h.pump(addon, lambda: addon.link.link.style_job is None, 60.0, f"reference {values}")
    return h.settings().style_status


def panel_style() -> dict:
    s = h.settings()
    return {"weights": {w.name: w.weight for w in s.style_weights},
            "sliders": {n: getattr(s, n) for n in ("roughness", "erosion_strength", "elevation_range", "sea_level")},
            "height_m": s.height_m}


mesh = bpy.data.meshes.new("Reference")
addon.mesh.write_heights(mesh, np.load(reference_npy), CELL)
ref_obj = bpy.data.objects.new("Reference", mesh)
bpy.context.scene.collection.objects.link(ref_obj)
h.settings().style_preset = "alpine"
bpy.ops.ed.undo_push(message="before reference")
h.results["before_reference"] = panel_style()
h.results["object_status"] = reference(bpy.ops.worldsculpt.style_from_object, reference_object=ref_obj)
h.results["from_object"] = panel_style()
h.results["undo_reference"] = str(bpy.ops.ed.undo())
h.results["after_undo_reference"] = panel_style()
h.results["file_status"] = reference(bpy.ops.worldsculpt.style_from_file, reference_file=reference_png,
                                     reference_cell_size=CELL, reference_height_m=reference_relief)
h.results["from_file"] = panel_style()
h.results["missing_status"] = reference(bpy.ops.worldsculpt.style_from_file, reference_file=str(out / "nope.png"))
h.results["no_cell_status"] = reference(bpy.ops.worldsculpt.style_from_file, reference_file=reference_npy,
                                        reference_cell_size=0.0, reference_height_m=0.0)
h.results["after_bad_files"] = panel_style()
h.results["not_a_terrain"] = reference(bpy.ops.worldsculpt.style_from_object,
                                       reference_object=bpy.data.objects.new("Empty mesh", bpy.data.meshes.new("e")))
h.draw_panels(addon)  # every property and operator the panels show exists
h.finish()
