"""Seams and edit respect of infinite-world tiles made by the shipped learned models.

    python reports/make_world_report.py [--out reports/world_tiling]

Every tile is generated on its own (its neighbourhood canvas, seeded noise), so the tiles of a big
grid also give every smaller grid inside it: one grid per setting, ratios for its sub-grids. Seam
visibility = mean |gradient| across tile borders / the same over interior steps at the same phase
(``backend.world.tiles.seam_ratio``; 1 = invisible), and the mismatch of the samples neighbours share.
Writes README.md and PNGs (hillshaded) into --out.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.generators.learned import (  # noqa: E402
    BASE_FILE,
    MODELS_DIR,
    QUALITY,
    SUPERRES_FILE,
    TerrainModel,
    shipped_models_present,
)
from backend.metrics.realism import contact_sheet  # noqa: E402
from backend.terrain import Heightfield  # noqa: E402
from backend.world.store import TileMeta  # noqa: E402
from backend.world.tiles import TileWorld, WorldSettings, create_world, seam_ratio, stitch  # noqa: E402

SEED = 5
STYLE = {"alpine": 0.7, "rolling_hills": 0.3}
# (quality, lod, largest grid): lod 1 is the base level alone, what explore shows far away
RUNS = [("interactive", 0, 4), ("interactive", 1, 8), ("full", 0, 2)]


def edge_mismatch(tiles: dict[tuple[int, int], np.ndarray], k: int) -> float:
    """Mean |difference| of the samples two neighbours share, over the mean interior step."""
    diffs, steps = [], []
    for (x, y), t in tiles.items():
        if x < k - 1:
            diffs.append(np.abs(t[:, -1] - tiles[(x + 1, y)][:, 0]))
        if y < k - 1:
            diffs.append(np.abs(t[-1, :] - tiles[(x, y + 1)][0, :]))
        steps.append(np.abs(np.diff(t, axis=1)).ravel())
    return float(np.concatenate(diffs).mean() / np.concatenate(steps).mean())


def grid_run(root: Path, models: tuple[TerrainModel, TerrainModel], quality: str, lod: int, k: int):
    create_world(root, SEED, WorldSettings(STYLE, quality=quality), *models)
    world = TileWorld(root, *models)
    start = time.perf_counter()
    tiles = {(x, y): world.tile((x, y), lod) for y in range(k) for x in range(k)}
    per_tile = (time.perf_counter() - start) / len(tiles)
    n = tiles[(0, 0)].shape[0] - 1
    period = world.factor ** (world.levels - 1 - lod)
    rows = []
    for size in (2, 4, 8):
        if size <= k:
            sub = {c: t for c, t in tiles.items() if c[0] < size and c[1] < size}
            heights = stitch(sub, range(size), range(size))
            rows.append((size, seam_ratio(heights, n, period), edge_mismatch(sub, size)))
    cell = world.store.cell_size * world.factor ** lod
    return Heightfield(stitch(tiles, range(k), range(k)), cell), rows, per_tile


def edit_demo(root: Path, models: tuple[TerrainModel, TerrainModel]) -> tuple[list[Heightfield], str]:
    """Edit tile (0, 0) (a raised plateau on its east half), then generate (1, 0): with and without the edit."""
    worlds = []
    for name in ("plain", "edited"):
        create_world(root / name, SEED, WorldSettings(STYLE), *models)
        worlds.append(TileWorld(root / name, *models))
    plain, world = worlds
    edited = world.tile((0, 0)).copy()
    n = edited.shape[0] - 1
    edited[:, n // 2:] += 400.0
    world.store.put_tile((0, 0), Heightfield(edited, world.store.cell_size), TileMeta("edited", "report", 0))
    world.cache.clear()
    after = {(0, 0): edited, (1, 0): world.tile((1, 0))}
    before = {(0, 0): edited, (1, 0): plain.tile((1, 0))}
    raised = (after[(1, 0)] - before[(1, 0)]).mean(axis=0)
    cell = world.store.cell_size
    sheets = [Heightfield(stitch(before, range(2), range(1)), cell), Heightfield(stitch(after, range(2), range(1)), cell)]
    text = (f"Shared edge equal to the edit: {bool(np.array_equal(after[(1, 0)][:, 0], edited[:, -1]))}. "
            f"Mean rise of the later neighbour over the unedited one, by distance from the edited tile "
            f"(samples 1, 4, 16, 64, {n}): " + ", ".join(f"{raised[i]:.0f} m" for i in (1, 4, 16, 64, n)) + ".")
    return sheets, text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "world_tiling")
    args = ap.parse_args()
    if not shipped_models_present():
        raise SystemExit(f"no shipped models in {MODELS_DIR}: train them first (scripts/train_models.sh)")
    models = TerrainModel.load(MODELS_DIR / BASE_FILE), TerrainModel.load(MODELS_DIR / SUPERRES_FILE)
    args.out.mkdir(parents=True, exist_ok=True)
    table = ["| quality (steps base/superres) | level | grid | seam ratio | shared-edge mismatch | s/tile |",
             "|---|---|---|---|---|---|"]
    maps, titles = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (quality, lod, k) in enumerate(RUNS):
            field, rows, per_tile = grid_run(Path(tmp) / f"run{i}", models, quality, lod, k)
            q = QUALITY[quality]
            for size, ratio, mismatch in rows:
                table.append(f"| {quality} ({q.base_steps}/{q.superres_steps}) | lod {lod} | {size}x{size} | "
                             f"{ratio:.3f} | {mismatch:.3f} | {per_tile:.1f} |")
                print(table[-1], flush=True)
            maps.append(field)
            titles.append(f"{quality}, lod {lod}, {k}x{k} tiles")
        zoom = maps[0].heights[384:640, 384:640]  # the centre tile corner of the 4x4 map, full resolution
        maps.append(Heightfield(zoom, maps[0].cell_size))
        titles.append("zoom on a 4-tile corner (interactive, lod 0)")
        contact_sheet(maps, args.out / "world_maps.png", titles, cols=2)
        sheets, edit_text = edit_demo(Path(tmp) / "edit", models)
        contact_sheet(sheets, args.out / "edit_respect.png",
                      ["east tile generated without the edit", "east tile generated after the edit"], cols=1)
    readme = f"""# Infinite world tiles: seams and edit respect

Made by `python reports/make_world_report.py` with the models in `models/` (seed {SEED}, style {STYLE}).
Each tile is the centre of its own MultiDiffusion canvas over world-seeded noise
(`backend/world/region.py`, `backend/world/tiles.py`); lod 1 is the base level only (64 cells a tile).

**Seam ratio**: mean |gradient| across tile borders / mean |gradient| over interior steps at the same
position modulo the super-resolution factor (1 = borders look like anywhere else). **Shared-edge
mismatch**: mean |difference| of the edge samples two neighbours both hold / the mean interior step
(0 = they agree; each tile is computed from its own canvas, so they differ slightly).

{chr(10).join(table)}

![world maps](world_maps.png)

## Respect for an earlier edit

{edit_text}

![edit respect](edit_respect.png)
"""
    (args.out / "README.md").write_text(readme)
    print(readme)


if __name__ == "__main__":
    main()
