"""Scenario: an artist's session on learned terrain at 512² over 4 km (7.8 m cells): every brush kind through the
brush operator, Erode Selection, a valley then a River curve along it, a ridge and a cliff curve; each edit undone.

    python natural.py <zip> <backend address> <out dir> <plan json>

The plan (tests/test_natural_edits.py): {"terrain": Generate settings, "stroke": [[row, col, pressure], ...],
"radius": cells, "strength", "selection": [row, col, radius] (a disc of vertices), "valley": [[row, col], ...]
(the valley stroke and the River curve along it), "river_width": cells, "curve": [[row, col], ...] (ridge and
cliff), "curve_width": cells}. Writes before.npy, after_<name>.npy and undone_<name>.npy (terrain z, row-major);
the pytest side checks them. One Blender session for all, as an artist's.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import bpy
import numpy as np

import _harness as h

BRUSHES = ("raise", "lower", "smooth", "flatten", "ridge", "valley", "erode", "regenerate", "style_paint")
OFFSET = (120.0, -40.0, 0.0)  # the terrain is moved off the origin: operators map world space onto its grid
zip_path, address, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
plan = json.loads(sys.argv[4])
n = plan["terrain"]["resolution"]
cell = plan["terrain"]["size_m"] / (n - 1)
target = "Natural Terrain"


def world(row: float, col: float) -> tuple[float, float]:
    return (col - (n - 1) / 2) * cell + OFFSET[0], ((n - 1) / 2 - row) * cell + OFFSET[1]


def save(name: str) -> None:
    np.save(out / f"{name}.npy", h.positions(target)[:, 2])


def pump_edit(what: str) -> float:
    start = time.perf_counter()
    h.pump(addon, lambda: addon.link.link.stroke is None, 120.0, what)
    h.check(h.settings().last_error == "", f"{what}: {h.settings().last_error}")
    return time.perf_counter() - start


def brush(kind: str, points: list[list[float]], radius: float, strength: float) -> float:
    s = h.settings()
    s.brush_kind, s.brush_radius, s.brush_strength, s.brush_style = kind, radius * cell, strength, "glacial_valleys"
    stroke = h.stroke_elements([(*world(r, c), p) for r, c, p in points])
    h.check(bpy.ops.worldsculpt.brush(stroke=stroke) == {"FINISHED"}, f"{kind}: brush operator did not finish")
    return pump_edit(kind)


def curve(kind: str, points: list[list[float]], width: float, strength: float) -> float:
    data = bpy.data.curves.new(f"Guide {kind}", "CURVE")
    data.dimensions = "3D"
    spline = data.splines.new("POLY")
    spline.points.add(len(points) - 1)
    for point, (row, col) in zip(spline.points, points):
        point.co = (*world(row, col), 500.0, 1.0)  # above the ground: z is ignored
    guide = bpy.data.objects.new(f"Guide {kind}", data)
    bpy.context.scene.collection.objects.link(guide)
    bpy.context.view_layer.update()
    s = h.settings()
    s.curve_object, s.curve_kind, s.curve_width, s.curve_strength = guide, kind, width * cell, strength
    h.check(bpy.ops.worldsculpt.curve_to_terrain() == {"FINISHED"}, f"{kind} curve: operator did not finish")
    return pump_edit(f"{kind} curve")


def undo(name: str, times: int = 1) -> None:
    for _ in range(times):
        h.results.setdefault("undo", []).append(str(bpy.ops.ed.undo()))
    save(f"undone_{name}")


def erode_selection(row: float, col: float, radius: float) -> float:
    obj = bpy.data.objects[target]
    rows, cols = np.divmod(np.arange(n * n), n)
    chosen = (rows - row) ** 2 + (cols - col) ** 2 <= radius ** 2
    obj.data.vertices.foreach_set("select", chosen)
    h.settings().restyle_blend = 12 * cell
    h.check(bpy.ops.worldsculpt.erode_selection() == {"FINISHED"}, "erode selection did not finish")
    return pump_edit("erode selection")


addon = h.install(zip_path)
h.connect(addon, address)
h.settings().style_preset = "alpine"
h.generate(addon, timeout=300, target=target, generator="diffusion", **plan["terrain"])
h.check(h.settings().last_error == "", f"generation failed: {h.settings().last_error}")
bpy.data.objects[target].location = OFFSET
bpy.context.view_layer.update()
save("before")
bpy.ops.ed.undo_push(message="terrain placed")
latency: dict[str, float] = {}
for kind in BRUSHES:
    latency[kind] = brush(kind, plan["stroke"], plan["radius"], plan["strength"])
    save(f"after_{kind}")
    undo(kind)
if "erode_selection" in dir(bpy.ops.worldsculpt):
    latency["erode_selection"] = erode_selection(*plan["selection"])
    save("after_erode_selection")
    undo("erode_selection")
valley = [[r, c, 1.0] for r, c in plan["valley"]]
latency["valley_for_river"] = brush("valley", valley, plan["river_width"], 0.8)
save("after_valley_for_river")
latency["river"] = curve("river", plan["valley"], plan["river_width"], 0.6)
save("after_river")
undo("river", 2)
for kind in ("ridge", "cliff"):
    latency[f"{kind}_curve"] = curve(kind, plan["curve"], plan["curve_width"], 0.6)
    save(f"after_{kind}_curve")
    undo(f"{kind}_curve")
h.results["latency_s"] = latency
h.finish()
