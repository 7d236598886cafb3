"""Sculpt in headless Blender through the add-on, as an artist would: Generate, then brush strokes.

    python -m backend.render.sculpt <backend address> <config json>

Run as a subprocess (bpy is a whole Blender, one per process) by ``benchmarks/bench_brush.py`` and
``reports/make_brush_render.py``. Registers the add-on from this checkout, connects, runs the Generate
operator with ``config["generate"]`` (Scene.worldsculpt values), then sends each of ``config["strokes"]``
through the brush operator and times it from the operator call to the moment the timer callback has written
the final window into the mesh. Headless Blender runs no timers, so this calls the add-on's timer callback
itself, at the intervals the callback asks for, starting ``link.interval(busy=True)`` after the call (the
add-on re-arms its timer so whenever it sends a job: 5 ms while a brush stroke is in flight, Blender's own idle
event loop step). With ``config["save"]`` (a folder) it writes the terrain's heights
before.npy and after.npy. Prints ``RESULTS <json>``: per stroke its latency, first preview and windows shown.

A stroke: {"kind", "points": [[row, col, pressure], ...] (grid cells), "radius" (cells), "strength",
"seed", "style" (Style Paint's style, optional), "live" (optional: send the points first as a live dab, as the
modal brush does while the pen is down, then commit them; the live dab's latency is reported too)}.
A curve guide instead: {"curve": "ridge" | "river" | "cliff", "points": [[row, col], ...], "width" (cells),
"strength", "seed"}: a poly curve object over those cells through the Curve to Terrain operator.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

import bpy
import numpy as np

import blender_addon
from blender_addon import brushes, mesh
from blender_addon import link as link_module


def run_timer(until: Callable[[], bool], timeout: float) -> None:
    """Call the timer callback as bpy.app.timers would, until ``until()`` or the timeout."""
    deadline = time.monotonic() + timeout
    interval = link_module.interval(busy=True)
    while not until():
        if time.monotonic() > deadline:
            s = bpy.context.scene.worldsculpt
            raise TimeoutError(f"nothing after {timeout} s (status {s.status!r}, brush {s.brush_status!r})")
        time.sleep(interval)
        interval = link_module.tick()


def stroke_elements(points: list[list[float]], shape: tuple[int, int], cell: float) -> list[dict[str, Any]]:
    """[row, col, pressure] grid points -> the operator's stroke items, in world space (terrain at the origin)."""
    rc, cc = (shape[0] - 1) / 2, (shape[1] - 1) / 2
    fields = {}  # every field this Blender's stroke element has, at its default (4.2 also wants pen_flip)
    for prop in bpy.types.OperatorStrokeElement.bl_rna.properties:
        if prop.identifier != "rna_type":
            fields[prop.identifier] = (False if prop.type == "BOOLEAN" else "" if prop.type == "STRING"
                                       else (0.0,) * prop.array_length if prop.array_length else 0.0)
    return [dict(fields, location=((c - cc) * cell, (rc - r) * cell, 0.0), pressure=p, is_start=i == 0)
            for i, (r, c, p) in enumerate(points)]


def live_dab(points: list[list[float]], shown: list[float]) -> dict[str, float]:
    """Begin a stroke and send its first dab live (pen still down), as the modal brush's press does; wait until
    its result is in the mesh. Returns its latency and first preview (seconds after the send)."""
    s = bpy.context.scene.worldsculpt
    stroke = brushes.begin_stroke(bpy.context, s.brush_kind)
    start = time.perf_counter()
    job = link_module.link.submit_brush(s.brush_params(points, stroke.cell_size, commit=False), final=False)
    link_module.wake()
    run_timer(lambda: job not in stroke.jobs or link_module.link.stroke is None, 300.0)
    if s.last_error or not shown:
        raise RuntimeError(f"live dab failed: {s.last_error or 'nothing shown'}")
    return {"live_latency_s": shown[-1] - start, "live_first_shown_s": shown[0] - start}


def curve_guide(stroke: dict[str, Any], shape: tuple[int, int], cell: float) -> None:
    """Draw the guide as a poly curve over its grid cells and run Curve to Terrain on it."""
    s = bpy.context.scene.worldsculpt
    data = bpy.data.curves.new(f"Guide {stroke['curve']}", "CURVE")
    data.dimensions = "3D"
    spline = data.splines.new("POLY")
    spline.points.add(len(stroke["points"]) - 1)
    locations = stroke_elements([[r, c, 1.0] for r, c in stroke["points"]], shape, cell)
    for point, element in zip(spline.points, locations):
        point.co = (*element["location"][:2], 0.0, 1.0)
    guide = bpy.data.objects.new(f"Guide {stroke['curve']}", data)
    bpy.context.scene.collection.objects.link(guide)
    bpy.context.view_layer.update()
    s.curve_object, s.curve_kind = guide, stroke["curve"]
    s.curve_width, s.curve_strength = stroke["width"] * cell, stroke["strength"]
    if bpy.ops.worldsculpt.curve_to_terrain() != {"FINISHED"}:
        raise RuntimeError(f"curve {stroke} did not start: {s.brush_status}")


def connect_and_generate(address: str, generate: dict[str, Any]) -> Any:
    """Connect the add-on's link and run Generate with these Scene.worldsculpt values; the scene's settings."""
    link = link_module.link
    link.connect(address)
    run_timer(lambda: link.connected, 120.0)
    s = bpy.context.scene.worldsculpt
    for key, value in generate.items():
        setattr(s, key, value)
    bpy.ops.worldsculpt.generate()
    run_timer(lambda: not s.running, 600.0)
    if s.last_error:
        raise RuntimeError(f"generation failed: {s.last_error}")
    return s


def sculpt(address: str, config: dict[str, Any]) -> list[dict[str, Any]]:
    link = link_module.link
    s = connect_and_generate(address, config["generate"])
    terrain = bpy.data.objects[s.target]
    heights, cell = mesh.read_heights(terrain)
    save = Path(config["save"]) if config.get("save") else None
    if save is not None:
        np.save(save / "before.npy", heights)
    shown: list[float] = []  # when each window (previews, then the result) reached the mesh
    write_window = mesh.write_window

    def timed_write(*args: Any, **kwargs: Any) -> None:
        write_window(*args, **kwargs)
        shown.append(time.perf_counter())

    mesh.write_window = timed_write  # link.py looks it up at call time
    results = []
    for stroke in config["strokes"]:
        s.seed = stroke["seed"]
        if "curve" in stroke:
            shown.clear()
            start = time.perf_counter()
            curve_guide(stroke, heights.shape, cell)
            run_timer(lambda: link.stroke is None, 300.0)
            if s.last_error:
                raise RuntimeError(f"curve {stroke} failed: {s.last_error}")
            results.append({**stroke, "latency_s": shown[-1] - start, "windows_shown": len(shown)})
            continue
        s.brush_kind, s.brush_radius, s.brush_strength = stroke["kind"], stroke["radius"] * cell, stroke["strength"]
        if "style" in stroke:
            s.brush_style = stroke["style"]
        shown.clear()
        live: dict[str, float] = {}
        if stroke.get("live"):  # as the modal brush does: the pen goes down (a live dab), then up (the commit)
            live = live_dab(stroke["points"], shown)
            shown.clear()
            start = time.perf_counter()
            link.submit_brush(s.brush_params(stroke["points"], cell, commit=True), final=True)
            link_module.wake()
        else:
            start = time.perf_counter()
            if bpy.ops.worldsculpt.brush(stroke=stroke_elements(stroke["points"], heights.shape, cell)) != {"FINISHED"}:
                raise RuntimeError(f"stroke {stroke} did not start: {s.brush_status}")
        run_timer(lambda: link.stroke is None, 300.0)
        if s.last_error:
            raise RuntimeError(f"stroke {stroke} failed: {s.last_error}")
        results.append({**stroke, **live, "latency_s": shown[-1] - start, "first_shown_s": shown[0] - start,
                        "windows_shown": len(shown)})
    mesh.write_window = write_window
    if save is not None:
        np.save(save / "after.npy", mesh.read_heights(terrain)[0])
    link.close()
    return results


def main() -> None:
    blender_addon.register()
    print("RESULTS " + json.dumps(sculpt(sys.argv[1], json.loads(sys.argv[2]))), flush=True)
    sys.stderr.flush()
    # Leave without the interpreter's teardown: bpy 4.2 as a Python module segfaults while finalising once the
    # add-on was registered (tests/blender_scenarios/_harness.py does the same)
    os._exit(0)


if __name__ == "__main__":
    main()
