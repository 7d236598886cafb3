"""How long Blender takes to put a 1024² height grid into a mesh, in real (headless) Blender.

    python -m benchmarks.bench_blender_apply [--size 1024] [--repeat 20]

Compares, in one run: the add-on's first creation (topology built with foreach_set, edges from numpy),
its heights-only update (``attributes["position"].data.foreach_set("vector", float32)``), the
``vertices.foreach_set("co")`` baseline, and ``from_pydata``. Writes benchmarks/results/blender_apply_cpu.txt.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path
from typing import Callable

import bpy
import numpy as np

from blender_addon import grid
from blender_addon import mesh as wsc_mesh

RESULTS = Path(__file__).resolve().parent / "results" / "blender_apply_cpu.txt"


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def fmt(name: str, seconds: list[float]) -> str:
    ms = [s * 1000 for s in seconds]
    spread = f"min {min(ms):8.2f}  max {max(ms):8.2f}" if len(ms) > 1 else ""
    return f"{name:<62} median {statistics.median(ms):9.2f} ms  {spread}  (n={len(ms)})"


def hardware_header() -> str:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((l.split(":", 1)[1].strip() for l in lscpu.splitlines() if l.startswith("Model name")), "?")
    return (f"# date: {datetime.datetime.now().isoformat(timespec='seconds')}\n"
            f"# cpu: {model}, {os.cpu_count()} cores available\n"
            f"# bpy {bpy.app.version_string}, numpy {np.__version__}, python {platform.python_version()}\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    n = args.size
    rng = np.random.default_rng(0)
    heights = [rng.random((n, n), dtype=np.float32) * 300 for _ in range(2)]
    cell = 2.0
    lines = [f"{n}x{n} grid: {n * n} vertices, {(n - 1) ** 2} quads, float32 metres"]

    def first_creation() -> None:
        wsc_mesh.write_heights(bpy.data.meshes.new("bench"), heights[0], cell)

    lines.append(fmt("first creation (add-on: build topology + positions + update)", timed(first_creation, 3)))

    def first_creation_blender_edges() -> None:
        m = bpy.data.meshes.new("bench-calc-edges")
        m.vertices.add(n * n)
        m.loops.add(4 * (n - 1) ** 2)
        m.polygons.add((n - 1) ** 2)
        m.attributes["position"].data.foreach_set("vector", grid.positions(heights[0], cell).ravel())
        m.attributes[".corner_vert"].data.foreach_set("value", grid.quad_corners(n, n))
        m.polygons.foreach_set("loop_start", grid.loop_starts(n, n))
        m.update(calc_edges=True)
    lines.append(fmt("  same, but Blender computes the edges (update(calc_edges=True))",
                     timed(first_creation_blender_edges, 3)))
    me = bpy.data.meshes.new("bench-target")
    wsc_mesh.write_heights(me, heights[0], cell)
    i = iter(range(10 ** 9))
    lines.append(fmt("heights-only update, add-on write_heights (z fill + set + update)",
                     timed(lambda: wsc_mesh.write_heights(me, heights[next(i) % 2], cell), args.repeat)))
    flat32 = grid.positions(heights[1], cell).ravel()
    flat64 = flat32.astype(np.float64)
    position = me.attributes["position"].data
    lines.append(fmt('attributes["position"].data.foreach_set("vector", float32)',
                     timed(lambda: position.foreach_set("vector", flat32), args.repeat)))
    lines.append(fmt('same foreach_set with float64 input (a conversion per item)',
                     timed(lambda: position.foreach_set("vector", flat64), 3)))
    lines.append(fmt('baseline vertices.foreach_set("co", float32)',
                     timed(lambda: me.vertices.foreach_set("co", flat32), 5)))

    def recompute_normals() -> None:
        position.foreach_set("vector", flat32)
        me.update()
        _ = me.vertex_normals[0].vector  # normals are lazy: computed on first use (i.e. first redraw)
    lines.append(fmt("positions + update + vertex normals (what the next redraw pays)", timed(recompute_normals, 5)))

    verts = grid.positions(heights[0], cell).tolist()
    faces = grid.quad_corners(n, n).reshape(-1, 4).tolist()

    def pydata() -> None:
        m = bpy.data.meshes.new("pydata")
        m.from_pydata(verts, [], faces)
        m.update()
    lines.append(fmt("from_pydata(lists) + update (lists prepared beforehand)", timed(pydata, 1)))

    text = hardware_header() + "\n".join(lines) + "\n"
    print(text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)


if __name__ == "__main__":
    main()
