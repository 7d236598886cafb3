"""Shared steps of the Blender scenarios: install the built zip into a throwaway extension repository,
pump the add-on's timer (headless Blender runs no timers), and collect checks.

Each scenario runs in its own process (bpy can be imported once per process) with
BLENDER_USER_RESOURCES pointing at a temporary folder, so nothing touches the user's Blender config.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import tempfile
import time
from types import ModuleType
from typing import Any, Callable

import bpy
import numpy as np

REPO = "wstest"
PACKAGE = f"bl_ext.{REPO}.worldsculpt"

failures: list[str] = []
results: dict[str, Any] = {}


def check(ok: bool, what: str) -> None:
    if not ok:
        failures.append(what)
        print(f"CHECK FAILED: {what}", file=sys.stderr, flush=True)


def install(zip_path: str) -> ModuleType:
    """Install and enable the extension zip the way a user's "Install from Disk" does."""
    repo = bpy.context.preferences.extensions.repos.new(
        name=REPO, module=REPO, custom_directory=tempfile.mkdtemp(prefix="wsc-repo-"), source="USER")
    result = bpy.ops.extensions.package_install_files(filepath=zip_path, repo=repo.module, enable_on_install=True)
    check(result == {"FINISHED"}, f"package_install_files returned {result}")
    check(PACKAGE in bpy.context.preferences.addons, f"{PACKAGE} not enabled after install")
    return importlib.import_module(PACKAGE)


def settings() -> Any:
    return bpy.context.scene.worldsculpt


def pump(addon: ModuleType, until: Callable[[], bool], timeout: float, what: str) -> float:
    """Call the timer callback until ``until()``; returns the longest single tick in seconds."""
    longest = 0.0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        start = time.perf_counter()
        addon.link.tick()
        longest = max(longest, time.perf_counter() - start)
        if until():
            return longest
        time.sleep(0.01)
    check(False, f"timed out after {timeout} s waiting for {what} (status {settings().status!r}, "
                 f"error {settings().last_error!r})")
    return longest


def connect(addon: ModuleType, address: str) -> None:
    bpy.context.preferences.addons[PACKAGE].preferences.address = address
    check(bpy.ops.worldsculpt.connect() == {"FINISHED"}, "connect operator failed")
    pump(addon, lambda: settings().connected, 30.0, "connection")


def generate(addon: ModuleType, timeout: float = 60.0, **values: Any) -> dict[str, Any]:
    """Run the Generate operator with these settings and pump until the job ends; returns its params."""
    s = settings()
    for key, value in values.items():
        setattr(s, key, value)
    params = s.generate_params()
    start = time.perf_counter()
    check(bpy.ops.worldsculpt.generate() == {"FINISHED"}, "generate operator did not finish at once")
    results.setdefault("operator_return_s", []).append(time.perf_counter() - start)
    longest = pump(addon, lambda: not s.running, timeout, "generation")
    results.setdefault("longest_tick_s", []).append(longest)
    return params


TERRAIN_CELL = 2000.0 / 127  # the learned test terrain: 128² over 2 km
TERRAIN_OFFSET = (50.0, -20.0, 5.0)  # where it is moved, so operators must map world space onto its grid


def learned_terrain(addon: ModuleType, target: str, out: Any) -> bpy.types.Object:
    """Generate the edit scenarios' terrain (learned alpine, 128² over 2 km, 400 m, seed 2) into ``target``,
    move it off the origin and save its heights to ``out``/before.npy."""
    settings().style_preset = "alpine"
    generate(addon, timeout=120, target=target, resolution=128, size_m=2000.0, height_m=400.0, seed=2,
             generator="diffusion")
    check(settings().last_error == "", f"generation failed: {settings().last_error}")
    obj = bpy.data.objects[target]
    obj.location = TERRAIN_OFFSET
    bpy.context.view_layer.update()
    np.save(out / "before.npy", positions(target)[:, 2])
    return obj


def grid_to_world(row: float, col: float) -> tuple[float, float]:
    """World (x, y) over a cell of the moved learned terrain."""
    return (col - 63.5) * TERRAIN_CELL + TERRAIN_OFFSET[0], (63.5 - row) * TERRAIN_CELL + TERRAIN_OFFSET[1]


def stroke_elements(points: list[tuple[float, float, float]]) -> list[dict[str, Any]]:
    """A paint stroke through world (x, y) points with pressures, with every field this Blender's
    OperatorStrokeElement has (4.2 also wants pen_flip), as its paint operators want."""
    def default(prop: Any) -> Any:
        if prop.type == "BOOLEAN":
            return False
        if prop.type == "FLOAT":
            return (0.0,) * prop.array_length if prop.array_length else 0.0
        return ""

    fields = {p.identifier: default(p) for p in bpy.types.OperatorStrokeElement.bl_rna.properties
              if p.identifier != "rna_type"}
    return [dict(fields, location=(x, y, 0.0), pressure=p, is_start=i == 0) for i, (x, y, p) in enumerate(points)]


def positions(name: str) -> np.ndarray:
    mesh = bpy.data.objects[name].data
    out = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
    mesh.attributes["position"].data.foreach_get("vector", out)
    return out.reshape(-1, 3)


def finish() -> None:
    results["failures"] = failures
    results["blender_version"] = list(bpy.app.version)
    print("RESULTS " + json.dumps(results), flush=True)
    sys.stderr.flush()
    # Leave without the interpreter's teardown: bpy 4.2 as a Python module segfaults while finalising once an
    # extension was enabled (even after disabling it); Blender itself exits through its own path.
    os._exit(1 if failures else 0)


class LayoutRecorder:
    """Stands in for a panel's UILayout so ``draw()`` can run headless; checks every property and
    operator it is asked to show exists, and keeps the label texts."""

    def __init__(self) -> None:
        self.labels: list[str] = []
        self.use_property_split = self.alert = False
        self.scale_y = 1.0

    def column(self, **_: Any) -> "LayoutRecorder":
        return self

    row = box = column

    def label(self, text: str = "", **_: Any) -> None:
        self.labels.append(text)

    def prop(self, data: Any, name: str, **_: Any) -> None:
        check(name in data.bl_rna.properties, f"panel shows missing property {name!r}")

    def prop_search(self, data: Any, name: str, search_data: Any, search_name: str, **_: Any) -> None:
        self.prop(data, name)
        check(hasattr(search_data, search_name), f"panel searches missing collection {search_name!r}")

    def operator(self, idname: str, **_: Any) -> None:
        category, name = idname.split(".")
        check(hasattr(getattr(bpy.ops, category), name), f"panel shows missing operator {idname!r}")

    def progress(self, factor: float = 0.0, text: str = "", **_: Any) -> None:
        check(0.0 <= factor <= 1.0, f"progress factor {factor} outside [0, 1]")
        self.labels.append(f"[progress {factor:.2f}] {text}")


def draw_panels(addon: ModuleType) -> list[str]:
    """Run both panels' draw() against the current scene; returns the labels they showed."""
    from types import SimpleNamespace

    layout = LayoutRecorder()
    for panel in (addon.panels.WSC_PT_connection, addon.panels.WSC_PT_generate, addon.panels.WSC_PT_style,
                  addon.panels.WSC_PT_brush, addon.panels.WSC_PT_explore):
        panel.draw(SimpleNamespace(layout=layout), bpy.context)
    return layout.labels
