"""Infinite-world throughput on this machine: explore-mode streaming and big maps.

    python -m benchmarks.bench_world [--near 1] [--far 2] [--map-sizes 1024,4096] [--sections stream,wins,map]
                                     [--device auto] [--models-dir models] [--out FILE]

stream: a fresh world seen from tile (0, 0): the requests explore mode makes (``blender_addon/explore_plan``:
nearest first, lod 0 up to `near` rings, lod 1 out to `far`), each run through the world_tiles job's own
code (``WorldTilesRequest.from_params`` -> ``OpenWorlds.run``, what the backend's worker calls); prints
tiles per second per level and the wait for the first tile, then its lod-0 tiles again after a backend
restart (read back from the world folder).
wins: what the obvious knobs buy: torch threads on one lod-1 tile, windows per network batch (the base
model's cost per 64² window), and the super-resolution window size (the cost of one window at 256² and
512², per fine cell, with the current weights' mid attention).
map: ``DiffusionGenerator.generate`` at each size (maps from 1024² on are world regions: a MultiDiffusion
base canvas of size / 4 cells, then one tiled x4 super-resolution), interactive quality.

Uses the shipped models (train them first: scripts/train_models.sh); results go to
benchmarks/results/world_<device>.txt (--out to change).
"""

from __future__ import annotations

import argparse
import importlib.util
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from backend.generators import DiffusionGenerator, GenerateRequest
from backend.models.shipped import MODELS_DIR, shipped_models_present
from backend.server.paths import Roots
from backend.server.world_job import OpenWorlds, WorldTilesRequest
from backend.world.region import SUPERRES_STRIDE, SUPERRES_WINDOW
from backend.world.tiles import BLOCK_TILES
from benchmarks.hardware import header

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
STYLE = {"alpine": 1.0}
CREATE = {"seed": 1, "style_weights": STYLE, "quality": "interactive", "erosion_stage": "light"}  # the add-on's defaults


def _load_plan():
    """blender_addon/explore_plan.py is bpy-free; load it without the add-on package (which needs bpy)."""
    spec = importlib.util.spec_from_file_location("explore_plan", ROOT / "blender_addon" / "explore_plan.py")
    module = sys.modules["explore_plan"] = importlib.util.module_from_spec(spec)  # dataclasses look it up
    spec.loader.exec_module(module)
    return module


plan = _load_plan()


def _run(worlds: OpenWorlds, models: DiffusionGenerator, params: dict[str, Any]) -> tuple[dict, Any]:
    request = WorldTilesRequest.from_params(params, Roots([Path(params["world"]).parent]))
    return worlds.run(request, models.base, models.superres, lambda info: None, lambda done, total: None)


def stream(models: DiffusionGenerator, root: Path, near: int, far: int) -> list[str]:
    """The view from tile (0, 0) as explore mode requests it; then its lod-0 tiles again after a restart
    (read back from the world folder; lod 1 tiles are not stored, they cost what they cost the first time)."""
    x, y = plan.tile_centre((0, 0), 1.0)  # the order is the same in any unit of tile widths
    lines = []
    for label, rings in (("fresh world", plan.Rings(near=near, far=far)),
                         ("after a backend restart", plan.Rings(near=near, far=near))):
        worlds, shown = OpenWorlds(), {}
        want = plan.wanted(x, y, 1.0, rings)
        wall, cpu = {0: 0.0, 1: 0.0}, {0: 0.0, 1: 0.0}
        start = time.perf_counter()
        first = None
        while (request := plan.next_request(want, shown, rings.batch)) is not None:
            lod, tiles = request
            t0, c0 = time.perf_counter(), time.process_time()
            _run(worlds, models, {"world": str(root), "tiles": [list(t) for t in tiles], "lod": lod, "create": CREATE})
            wall[lod] += time.perf_counter() - t0
            cpu[lod] += time.process_time() - c0
            first = first if first is not None else time.perf_counter() - start
            shown.update((t, lod) for t in tiles)
        for lod in sorted(set(shown.values())):
            n = sum(k == lod for k in shown.values())
            lines.append(f"stream {label}, lod {lod}: {n} tiles in {wall[lod]:.1f} s = {n / wall[lod]:.3f} tiles/s "
                         f"({cpu[lod]:.1f} s CPU = {n / max(cpu[lod], 1e-9):.3f} tiles per CPU second)")
        lines.append(f"stream {label}: first tile after {first:.2f} s, all {len(shown)} in "
                     f"{time.perf_counter() - start:.1f} s (near {rings.near}, far {rings.far}, {rings.batch} tile/job)")
    return lines


def _seconds(fn, repeats: int = 2) -> tuple[float, float]:
    """(wall, CPU) seconds per call after a warm-up; on a shared machine the CPU time is the steadier."""
    fn()
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats, (time.process_time() - cpu) / repeats


def wins(models: DiffusionGenerator, root: Path) -> list[str]:
    lines = []
    threads = torch.get_num_threads()
    for n in sorted({1, 2, threads}):
        torch.set_num_threads(n)
        worlds, tile = OpenWorlds(), iter(range(2, 400, 2 * BLOCK_TILES))  # a new block each time (none cached)
        wall, cpu = _seconds(lambda: _run(worlds, models, {"world": str(root), "tiles": [[next(tile), 50]], "lod": 1,
                                                            "create": CREATE}))
        lines.append(f"threads {n}: one lod 1 tile of a new block (the block's {BLOCK_TILES}x{BLOCK_TILES}-tile base "
                     f"canvas) in {wall:.2f} s wall ({cpu:.2f} s CPU)")
    torch.set_num_threads(threads)
    base, superres = models.base, models.superres
    cond = base.conditioning(STYLE, {})
    size = base.meta["resolution"]
    with torch.no_grad():
        for batch in (8, 32, 64):
            x = torch.randn(batch * 2, 1, size, size)  # x2: classifier-free guidance doubles every batch
            c = cond.map(lambda v: v.repeat(batch * 2, *[1] * (v.ndim - 1)))
            _, cpu = _seconds(lambda: base.denoiser(x, torch.full((batch * 2,), 5.0), c))
            lines.append(f"base windows per batch {batch} (x2 guidance): {1000 * cpu / (2 * batch):.1f} ms CPU per "
                         f"{size}² window")
        for window in (256, SUPERRES_WINDOW):
            x = torch.randn(1, 1, window, window)
            c = cond.replace(spatial=torch.randn(1, 1, window, window))
            _, cpu = _seconds(lambda: superres.denoiser(x, torch.full((1,), 1.0), c), repeats=1)
            stride = window * SUPERRES_STRIDE // SUPERRES_WINDOW
            per_cell = cpu / window**2 * (window / stride) ** 2  # cells are covered (window / stride)² times
            lines.append(f"super-resolution window {window}² (stride {stride}): {cpu:.2f} s CPU per evaluation, "
                         f"{1e6 * per_cell:.1f} µs CPU per fine cell and step with the overlap")
    return lines


def big_map(models: DiffusionGenerator, size: int) -> str:
    """Wall and CPU seconds (on a shared machine the CPU time is what an idle one would take, single-threaded)."""
    request = GenerateRequest(style_weights=STYLE, resolution=size, seed=1, size_m=models.native_size_m(size),
                              generator="diffusion")
    steps: list[tuple[float, float]] = []
    start, cpu = time.perf_counter(), time.process_time()

    def on_step(step: int, total: int, preview: Any) -> None:
        steps.append((time.perf_counter() - start, time.process_time() - cpu))
        print(f"  map {size}²: step {step}/{total} after {steps[-1][0]:.0f} s ({steps[-1][1]:.0f} s CPU)", flush=True)

    field = models.generate(request, on_step)
    if models.device.type == "cuda":
        torch.cuda.synchronize()
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    base = steps[models.settings(request).base_steps - 1]
    return (f"map {size}² (DiffusionGenerator, interactive, super-resolution windows {SUPERRES_WINDOW}²): "
            f"{seconds:.1f} s wall, {cpu_seconds:.1f} s CPU (base stage {base[0]:.1f} s wall, {base[1]:.1f} s CPU), "
            f"first preview {steps[0][0]:.1f} s, finite {bool(torch.isfinite(torch.from_numpy(field.heights)).all())}, "
            f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.1f} GiB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--near", type=int, default=1)
    ap.add_argument("--far", type=int, default=2)
    ap.add_argument("--map-sizes", default="1024,4096")
    ap.add_argument("--sections", default="stream,wins,map")
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--models-dir", type=Path, default=MODELS_DIR)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if not shipped_models_present(args.models_dir):
        raise SystemExit(f"no models in {args.models_dir}: train them first (scripts/train_models.sh)")
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    sections = set(args.sections.split(","))
    models = DiffusionGenerator(device, args.models_dir)
    lines = [header("infinite world"), f"# device {device}; command: python -m benchmarks.bench_world "
             f"--near {args.near} --far {args.far} --map-sizes {args.map_sizes} --sections {args.sections}"]
    print("\n".join(lines), flush=True)

    def emit(new: list[str]) -> None:
        for line in new:
            print(line, flush=True)
        lines.extend(new)

    with tempfile.TemporaryDirectory() as tmp:
        if "stream" in sections:
            emit(stream(models, Path(tmp) / "stream", args.near, args.far))
        if "wins" in sections:
            emit(wins(models, Path(tmp) / "wins"))
    if "map" in sections:
        for size in (int(s) for s in args.map_sizes.split(",")):
            emit([big_map(models, size)])
    out = args.out or RESULTS / f"world_{device}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
