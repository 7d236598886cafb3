"""Voxel meshing and the Caves panel: greedy vs face-culling quads, meshing time per chunk, a 4x4x2-chunk region
streamed into Blender.

    python -m benchmarks.bench_voxels [--models-dir models] [--repeats 3] [--devices cpu,cuda] [--no-blender]

Real parts only. A backend process makes the terrain (129² over 2 km, the learned generator when its models are
there) and serves the voxel jobs; the add-on in headless Blender (``backend/render/caves.py``) asks for a region
of 4 x 4 x 2 chunks of 2 m voxels around the 3D cursor and carves a tunnel through it with the voxel brush, timed
from the operator call to the last chunk written into Blender (target: <= 30 s). In this process, on the same
terrain with the same tunnel, per chunk: the chunk source, smooth (marching cubes) and blocky (greedy) meshing,
and the baselines measured in the same run: face culling's quad count (what greedy merging saves) and one
marching-cubes call over the whole region (what meshing chunk by chunk costs). Then one learned chunk at the
interactive setting (the voxel model's sampling and the refinement; target <= 1 s on the CPU) on each device,
with its ratio to the CPU in the same run. Writes benchmarks/results/voxels_cpu.txt; ``--no-blender`` (a GPU
machine without Blender) makes the terrain in this process and writes only the chunk rows, to voxels_<device>.txt.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

import torch

from backend.editing.voxel_brushes import VoxelStroke, apply_stroke
from backend.generators import DiffusionGenerator, GenerateRequest
from backend.generators.voxel_region import CHUNK_SOURCES, ChunkSettings, VoxelRegion
from backend.headless import LocalBackend
from backend.meshing.voxels import culled_face_count, voxel_mesh
from backend.models.shipped import MODELS_DIR
from backend.models.voxel import VoxelModel
from backend.voxels.chunk import CHUNK, ChunkKey, terrain_heights_at

from .hardware import header

RESULTS = Path(__file__).resolve().parent / "results" / "voxels_cpu.txt"
ROOT = Path(__file__).resolve().parents[1]
N, SIZE_M, VOXEL = 129, 2000.0, 2.0
SOURCE = "learned"  # the Caves panel's default: the voxel diffusion model draws the region's chunks
CURSOR = (70.0, -778.0, 0.0)  # 4 x 4 chunks, 256 m a side, at the terrain's southern edge (layers: the ground's)
TUNNEL = {"op": "carve", "radius": 9.0, "points": [[-60.0, -830.0, -40.0], [0.0, -800.0, -30.0], [60.0, -850.0, -46.0],
                                                   [120.0, -820.0, -34.0], [190.0, -860.0, -44.0]]}


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def blender_run(address: str, folder: str) -> dict:
    """The region and the tunnel through the add-on in headless Blender (backend/render/caves.py); the terrain's
    heights land in ``folder``/terrain.npy."""
    world = str(Path(folder) / "bench.world")
    config = {"save": folder, "generate": {"target": "Terrain", "resolution": N, "size_m": SIZE_M, "height_m": 400.0, "seed": 2,
                           "sea_level": 0.0, "style_preset": "alpine"},
              "world": world, "cursor": CURSOR, "strokes": [TUNNEL], "strokes_from_ground": True,
              "caves": {"size": 4, "depth": 2, "voxel_size": str(int(VOXEL)), "mesh_style": "smooth", "source": SOURCE}}
    run = subprocess.run([sys.executable, "-m", "backend.render.caves", address, json.dumps(config)], cwd=ROOT,
                         capture_output=True, text=True, timeout=1800)
    if run.returncode != 0:
        raise SystemExit(f"Blender run failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}")
    return json.loads(next(l for l in run.stdout.splitlines() if l.startswith("RESULTS "))[8:])


def in_process(heights: np.ndarray, keys: list[ChunkKey], ground: float, repeats: int) -> list[str]:
    """Per-chunk costs and the two baselines on the region the Blender run showed, with the same tunnel."""
    settings = ChunkSettings(heights, SIZE_M / (N - 1), VOXEL)
    source = CHUNK_SOURCES["featureless"](None)
    region = VoxelRegion(settings, source)
    stroke = VoxelStroke("carve", np.array([[x, y, z + ground] for x, y, z in TUNNEL["points"]]), TUNNEL["radius"])
    edit_ms = median_ms(lambda: [apply_stroke(region.chunk(k), stroke) for k in stroke.chunks(VOXEL)], repeats)
    for key in stroke.chunks(VOXEL):
        region.replace(apply_stroke(region.chunk(key), stroke), 0)
    source_ms = median_ms(lambda: source.make(keys[0], settings, 0, {}), repeats * 5)
    rows, greedy, culled, triangles = [], 0, 0, 0
    smooth_ms, blocky_ms = [], []
    for key in keys:
        density, _ = region.padded(key)
        culled += culled_face_count(density > 0)
        greedy += len(region.mesh(key, "blocky")[1])
        triangles += len(region.mesh(key, "smooth")[1])
        smooth_ms.append(median_ms(lambda: region.mesh(key, "smooth"), repeats))
        blocky_ms.append(median_ms(lambda: region.mesh(key, "blocky"), repeats))
    lo = np.array([min(k.i for k in keys), min(k.j for k in keys), min(k.k for k in keys)])
    span = [max(getattr(k, a) for k in keys) - low + 1 for a, low in zip("kji", lo[::-1])]  # chunks up, south, east
    whole = np.zeros([n * CHUNK + 1 for n in span], np.float32)  # (z, row, col) + 1 layer
    for key in keys:
        density, _ = region.padded(key)
        i, j, k = (key.i - lo[0]) * CHUNK, (key.j - lo[1]) * CHUNK, (key.k - lo[2]) * CHUNK
        whole[k:k + CHUNK + 1, j:j + CHUNK + 1, i:i + CHUNK + 1] = density
    whole_ms = median_ms(lambda: voxel_mesh(whole, 0.0, VOXEL), repeats)
    rows.append(f"chunk source (featureless voxelise_terrain), one chunk       {source_ms:8.2f} ms")
    rows.append(f"carve the tunnel (capsules, radius {TUNNEL['radius']:.0f} m), its {len(stroke.chunks(VOXEL))} chunks"
                f"        {edit_ms:8.1f} ms")
    rows.append(f"smooth mesh per chunk (33³ with neighbours, marching cubes)  median {statistics.median(smooth_ms):6.2f} ms"
                f"  max {max(smooth_ms):6.2f} ms  ({triangles} triangles in {len(keys)} chunks)")
    rows.append(f"blocky mesh per chunk (greedy quads)                        median {statistics.median(blocky_ms):6.2f} ms"
                f"  max {max(blocky_ms):6.2f} ms")
    rows.append(f"baseline: one marching-cubes call over the whole region     {whole_ms:8.1f} ms  "
                f"(chunked / whole: {sum(smooth_ms) / whole_ms:.2f} x)")
    rows.append(f"greedy quads {greedy} vs face-culling quads {culled} (baseline): {culled / greedy:.2f} x fewer "
                f"(target >= 2 x)")
    return rows


def ground_keys(settings: ChunkSettings, columns: int = 4, rows: int = 2) -> list[ChunkKey]:
    """The chunks holding the ground in a block of ``columns`` x ``rows`` chunk columns from the 3D cursor."""
    side = CHUNK * VOXEL
    i0, j0 = int(np.floor(CURSOR[0] / side)), int(np.floor(-CURSOR[1] / side))
    keys = []
    for i in range(i0, i0 + columns):
        for j in range(j0, j0 + rows):
            ground = terrain_heights_at(settings.heights, settings.cell_size, settings.grid_origin,
                                        np.array([(i + 0.5) * side]), np.array([-(j + 0.5) * side]))[0, 0]
            keys.append(ChunkKey(i, j, int(np.floor(ground / side))))
    return keys


def chunk_generation_rows(heights: np.ndarray, models_dir: Path, devices: list[str]) -> list[str]:
    """Seconds for one learned 32³ chunk (no neighbours yet, as a region's first) on each device, vs the CPU."""
    settings = ChunkSettings(heights, SIZE_M / (N - 1), VOXEL, seed=2)
    keys = ground_keys(settings)
    rows, cpu_s = [], None
    for device in devices:
        model = VoxelModel.load(models_dir / "voxel_chunks.safetensors", device)
        if not rows:
            rows.append(f"# voxel model sha256 {model.sha256[:16]}, "
                        f"{sum(p.numel() for p in model.denoiser.parameters())} parameters")
        make = CHUNK_SOURCES["learned"](model).make
        make(keys[0], settings, 0, {})  # warm-up: lazy initialisation, kernels
        seconds = []
        for key in keys:
            start = time.perf_counter()
            make(key, settings, 0, {})  # returns numpy arrays: the device is synchronised
            seconds.append(time.perf_counter() - start)
        median = statistics.median(seconds)
        cpu_s = median if device == "cpu" else cpu_s
        versus = f", {cpu_s / median:.1f}x the CPU" if cpu_s and device != "cpu" else ""
        target = "  (target <= 1 s: " + ("met)" if median <= 1.0 else "not met)") if device == "cpu" else ""
        rows.append(f"learned chunk, interactive, annealed ({device}, {len(keys)} chunks at the ground, torch threads "
                    f"{torch.get_num_threads()}): median {1000 * median:7.1f} ms, max {1000 * max(seconds):7.1f} ms"
                    f"{versus}{target}")
    return rows


def terrain_here(device: str) -> np.ndarray:
    """The Blender run's terrain made in this process (the learned generator, alpine, seed 2)."""
    request = GenerateRequest(style_weights={"alpine": 1.0}, resolution=N, size_m=SIZE_M, height_m=400.0, seed=2,
                              generator="diffusion")
    return DiffusionGenerator(device).generate(request, lambda step, total, preview: None).heights


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models-dir", type=Path, default=MODELS_DIR)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, help="default: results/voxels_cpu.txt, or voxels_<device>.txt with --no-blender")
    ap.add_argument("--devices", default="cpu,cuda", help="devices for the learned chunk rows, where present")
    ap.add_argument("--no-blender", action="store_true", help="only the learned chunk rows (voxels_cuda.txt)")
    args = ap.parse_args()
    devices = [d for d in args.devices.split(",") if d == "cpu" or (d == "cuda" and torch.cuda.is_available())]
    load_before = os.getloadavg()
    if args.no_blender:
        lines = [header("voxels"), f"# load average before {load_before[0]:.1f}",
                 f"# terrain {N}² over {SIZE_M:.0f} m (learned, alpine, seed 2), voxels {VOXEL:.0f} m", "",
                 *chunk_generation_rows(terrain_here(devices[-1]), args.models_dir, devices)]
        write(lines, args.out or RESULTS.with_name(f"voxels_{devices[-1]}.txt"))
        return
    with tempfile.TemporaryDirectory() as tmp:
        backend = LocalBackend("cpu", startup_timeout=300.0,
                               extra_args=["--models-dir", str(args.models_dir), "--root", tmp])
        try:
            blender = blender_run(backend.address, tmp)
            generator = "learned" if "diffusion" in backend.hello.content["generators"] else "procedural"
        finally:
            backend.close()
        heights = np.load(Path(tmp) / "terrain.npy")
    region, tunnel = blender["region"], blender["strokes"][0]
    keys = [ChunkKey(*c) for c in blender["region_chunks"]]
    shape = " x ".join(str(len({c[a] for c in blender["region_chunks"]})) for a in range(3))
    lines = [header("voxels"),
             f"# load average before {load_before[0]:.1f}, after {os.getloadavg()[0]:.1f} (a shared machine)",
             f"# terrain {N}² over {SIZE_M:.0f} m ({generator}, alpine, seed 2), voxels {VOXEL:.0f} m, chunks of "
             f"{CHUNK}³ ({CHUNK * VOXEL:.0f} m); region: the Caves panel's 4 x 4 chunks around the 3D cursor, depth 2",
             "",
             f"Blender (bpy, headless, the add-on's operators; the backend in its own process):",
             f"region of {len(keys)} chunks ({shape}), smooth, {SOURCE} chunk source: operator returned in "
             f"{1000 * region['operator_return_s']:.0f} ms, first chunk shown {region['first_chunk_s']:.2f} s, "
             f"all {region['chunks_shown']} shown {region['all_chunks_s']:.2f} s (target <= 30 s), longest timer tick "
             f"{1000 * region['longest_tick_s']:.0f} ms; {region['status']}",
             f"carve a tunnel through it (voxel brush, radius {TUNNEL['radius']:.0f} m, stored, {tunnel['chunks_shown']} "
             f"chunks remeshed): all shown {tunnel['all_chunks_s']:.2f} s, longest tick {1000 * tunnel['longest_tick_s']:.0f} ms",
             "",
             f"In this process, the same region and tunnel ({args.repeats} repeats, median):",
             *in_process(heights, keys, blender["ground_m"], args.repeats), "",
             *chunk_generation_rows(heights, args.models_dir, devices)]
    write(lines, args.out or RESULTS)


def write(lines: list[str], out: Path) -> None:
    text = "\n".join(lines) + "\n"
    print(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)


if __name__ == "__main__":
    main()
