"""Infinite-world throughput on this machine: explore-style tile streaming and one big map.

    python -m benchmarks.bench_world [--ring 1] [--far-ring 3] [--map-sizes 1024,4096] [--out FILE]

Streaming: a fresh world, the (2 ring + 1)² tiles around the camera at full detail (lod 0, stored),
then the rest of the (2 far_ring + 1)² square at lod 1 (base level only), nearest first, as the explore
mode asks for them; prints tiles per second for each. Map: a size² region of a world (MultiDiffusion
base canvas of size / factor cells, then one super-resolution), interactive quality. Uses the shipped
models (train them first: scripts/train_models.sh). Results go to benchmarks/results/world_cpu.txt.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from backend.generators.learned import BASE_FILE, MODELS_DIR, SUPERRES_FILE, TerrainModel, shipped_models_present
from backend.world.region import sample_region
from backend.world.tiles import TileWorld, WorldSettings, create_world
from benchmarks.hardware import header

RESULTS = Path(__file__).resolve().parent / "results" / "world_cpu.txt"
SETTINGS = WorldSettings({"alpine": 1.0})


def ring_order(radius: int) -> list[tuple[int, int]]:
    """Tiles of the (2 radius + 1)² square around (0, 0), nearest first (Chebyshev, then Euclidean)."""
    square = [(x, y) for y in range(-radius, radius + 1) for x in range(-radius, radius + 1)]
    return sorted(square, key=lambda t: (max(abs(t[0]), abs(t[1])), t[0] ** 2 + t[1] ** 2, t))


def stream(world: TileWorld, ring: int, far_ring: int) -> list[str]:
    near = ring_order(ring)
    far = [t for t in ring_order(far_ring) if t not in set(near)]
    lines = []
    for lod, tiles in ((0, near), (1, far)):
        start = time.perf_counter()
        for t in tiles:
            world.tile(t, lod)
        seconds = time.perf_counter() - start
        samples = world.tile(tiles[0], lod).shape[0]
        lines.append(f"stream lod {lod} ({samples}² samples/tile): {len(tiles)} tiles in {seconds:.1f} s = "
                     f"{len(tiles) / seconds:.3f} tiles/s")
    return lines


def big_map(base: TerrainModel, superres: TerrainModel, size: int) -> str:
    cond = base.conditioning(SETTINGS.style_weights, SETTINGS.sliders)
    start = time.perf_counter()
    with torch.no_grad():
        x = sample_region(base, superres, cond, SETTINGS.guidance, SETTINGS.stages(2), 1, (0, size), (0, size))
    seconds = time.perf_counter() - start
    return f"map {size}² (base canvas {size // superres.meta['factor']}², interactive): {seconds:.1f} s, " \
           f"finite: {bool(torch.isfinite(x).all())}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--ring", type=int, default=1)
    ap.add_argument("--far-ring", type=int, default=3)
    ap.add_argument("--map-sizes", default="1024,4096")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    if not shipped_models_present():
        raise SystemExit(f"no shipped models in {MODELS_DIR}: train them first (scripts/train_models.sh)")
    base, superres = TerrainModel.load(MODELS_DIR / BASE_FILE), TerrainModel.load(MODELS_DIR / SUPERRES_FILE)
    lines = [header("infinite world"), f"# settings: {SETTINGS}, stages {SETTINGS.stages(2)}"]
    print("\n".join(lines), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        create_world(Path(tmp) / "w", 1, SETTINGS, base, superres)
        for line in stream(TileWorld(Path(tmp) / "w", base, superres), args.ring, args.far_ring):
            print(line, flush=True)
            lines.append(line)
    for size in (int(s) for s in args.map_sizes.split(",")):
        lines.append(big_map(base, superres, size))
        print(lines[-1], flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
