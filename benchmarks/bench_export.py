"""Export timings: a 4033^2 heightmap in each heightmap format and a ~2M-triangle mesh in each mesh format.

Run: ``python benchmarks/bench_export.py`` (prints a header with hardware and versions, then one
line per case: seconds and file size). Each case writes into a fresh temp folder.
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numpy as np

from backend.export import export_terrain
from backend.terrain import Heightfield


def header() -> str:
    try:
        model = next(ln.split(":", 1)[1].strip() for ln in subprocess.run(
            ["lscpu"], capture_output=True, text=True).stdout.splitlines() if ln.startswith("Model name"))
    except (OSError, StopIteration):
        model = platform.processor() or "unknown CPU"
    libs = ", ".join(f"{p} {metadata.version(p)}" for p in (
        "numpy", "scipy", "pillow", "tifffile", "trimesh", "OpenEXR", "fast-simplification"))
    return (f"# {datetime.datetime.now().isoformat(timespec='seconds')}  {model}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}\n# {libs}")


def terrain(n: int, seed: int = 0) -> Heightfield:
    """Smooth fractal-ish terrain (sum of a few sines plus noise) so compressors see realistic data."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:n, :n].astype(np.float32) / n
    h = np.zeros((n, n), np.float32)
    for k in range(1, 7):
        a, b, p = rng.uniform(0.5, 2.0, 3)
        h += (300.0 / k) * np.sin(2 * np.pi * k * (a * x + b * y) + p).astype(np.float32)
    h += rng.normal(0, 0.3, (n, n)).astype(np.float32)
    return Heightfield(h, 1.0, style="alpine")


def run(hf: Heightfield, label: str, formats: list[str], **kw: object) -> None:
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        paths = export_terrain(hf, d, formats, **kw)  # type: ignore[arg-type]
        dt = time.perf_counter() - t
        size = sum(Path(p).stat().st_size for p in paths) / 2**20
    print(f"{label:<44} {dt:7.2f} s  {size:8.1f} MiB", flush=True)


def main() -> None:
    print(header())
    hm = terrain(4033)
    print("# heightmap 4033 x 4033 (16.3M samples)")
    for fmt in ("png16", "r16", "exr", "geotiff"):
        run(hm, f"{fmt}", [fmt])
    run(hm, "png16 tiled 505 (8x8 tiles)", ["png16"], tile_size=505)
    run(hm, "masks (slope computed + style map)", ["masks"])
    run(terrain(2049), "png16 preset unreal 2049 -> 4033 (resample)", ["png16"], preset="unreal")
    del hm
    mesh = terrain(1001)
    print("# mesh 1001 x 1001 grid = 2,000,000 triangles, height-ramp vertex colours")
    for fmt in ("glb", "gltf", "obj", "ply", "stl"):
        run(mesh, fmt, [fmt])
    run(mesh, "glb decimated quadric -> 200k", ["glb"], target_triangles=200_000, decimation="quadric")
    run(mesh, "glb decimated grid -> 200k", ["glb"], target_triangles=200_000, decimation="grid")
    run(mesh, "glb chunked 251 (4x4 chunks)", ["glb"], chunk_size=251)


if __name__ == "__main__":
    main()
