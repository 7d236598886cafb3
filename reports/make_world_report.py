"""Seams and edit respect of infinite-world tiles made by the shipped learned models.

    python reports/make_world_report.py [--runs interactive:0:4,...] [--models-dir models] [--out reports/world_tiling]

Every tile is generated on its own (its neighbourhood canvas, seeded noise), so the tiles of a big
grid also give every smaller grid inside it: one grid per setting, ratios for its sub-grids. Seam
visibility = mean |gradient| across tile borders / the same over interior steps at the same phase
(``backend.world.tiles.seam_ratio``; 1 = invisible), and the mismatch of the samples neighbours share.
Writes README.md and PNGs (hillshaded) into --out.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.metrics.realism import contact_sheet  # noqa: E402
from backend.models.shipped import BASE_FILE, MODELS_DIR, SUPERRES_FILE, shipped_models_present  # noqa: E402
from backend.models.terrain import QUALITY, TerrainModel  # noqa: E402
from backend.simulation.landscape import erode  # noqa: E402
from backend.terrain import Heightfield  # noqa: E402
from backend.world.region import SUPERRES_MARGIN, base_margin  # noqa: E402
from backend.world.store import TileMeta  # noqa: E402
from backend.world.tiles import (BLOCK_TILES, EROSION_MARGIN_M, TileWorld, WorldSettings, create_world,  # noqa: E402
    edge_step_ratio, seam_ratio, stitch)
from benchmarks.hardware import cpu_model  # noqa: E402

SEED = 5
STYLE = {"alpine": 0.7, "rolling_hills": 0.3}
# quality:lod:largest grid; lod 1 is the base level alone, what explore shows far away. Grids from 4x4 on
# cross blocks. Costs on a 2-core CPU (CPU s per tile, 1 thread): interactive lod 0 ~9, lod 1 ~8; full ~4x.
RUNS = "interactive:0:8,interactive:1:8,full:1:4,full:0:2"
# Eroded worlds (interactive, lod 0): the stages and the grid; they share one world's uneroded tiles, and a k x k
# grid needs (k + 2)² of them (~25 CPU s each with the erosion context on this CPU).
EROSION_STAGES_RUN, EROSION_GRID = "light,mature", 3


def edge_mismatch(tiles: dict[tuple[int, int], np.ndarray], k: int, between: Callable[[int], bool]) -> float:
    """Mean |difference| of the samples two neighbours share, over the mean interior step, for the
    borders `between` picks (j = the east or south tile's column or row)."""
    diffs, steps = [], []
    for (x, y), t in tiles.items():
        if x < k - 1 and between(x + 1):
            diffs.append(np.abs(t[:, -1] - tiles[(x + 1, y)][:, 0]))
        if y < k - 1 and between(y + 1):
            diffs.append(np.abs(t[-1, :] - tiles[(x, y + 1)][0, :]))
        steps.append(np.abs(np.diff(t, axis=1)).ravel())
    return float(np.concatenate(diffs).mean() / np.concatenate(steps).mean()) if diffs else float("nan")


@dataclass(frozen=True)
class SeamRow:
    size: int  # tiles per side
    all: float  # seam ratio over every border
    within: float  # borders inside a block (one base canvas)
    between: float  # borders between blocks
    control: float  # the same statistic on the mid-tile lines: window-grid lines with no border
    mismatch_within: float
    mismatch_between: float


@dataclass
class GridRun:
    quality: str
    lod: int
    k: int  # tiles per side
    tiles: dict[tuple[int, int], np.ndarray]
    cell: float  # metres per sample at this level
    period: int  # super-resolution factor at this level (gradients alternate with it)
    block: int  # tiles per side of one base canvas
    cpu_per_tile: float
    wall_per_tile: float

    @property
    def n(self) -> int:
        return next(iter(self.tiles.values())).shape[0] - 1

    def stitched(self, size: int | None = None) -> np.ndarray:
        size = size or self.k
        return stitch({c: t for c, t in self.tiles.items() if max(c) < size}, range(size), range(size))

    def rows(self) -> list[SeamRow]:
        """Seam statistics for every 2^j x 2^j sub-grid."""
        out = []
        within, between = (lambda j: j % self.block != 0), (lambda j: j % self.block == 0)
        for size in (2, 4, 8, 16):
            if size <= self.k:
                sub = {c: t for c, t in self.tiles.items() if max(c) < size}
                h, n = self.stitched(size), self.n

                def ratio(which: Callable[[int], bool]) -> float:
                    return seam_ratio(h, n, self.period, which) if any(map(which, range(1, size))) else float("nan")

                half = n // 2  # mid-tile lines: on the window grid like the borders, and at their phase
                out.append(SeamRow(size, seam_ratio(h, n, self.period), ratio(within), ratio(between),
                               seam_ratio(h[half:, half:], n, self.period), edge_mismatch(sub, size, within),
                               edge_mismatch(sub, size, between)))
        return out

    def corner_zoom(self) -> np.ndarray:
        """n x n samples around the corner where the four central tiles meet, at full resolution (a corner
        of four blocks when the grid's centre falls between blocks)."""
        c, half = self.k // 2 * self.n, self.n // 2
        return self.stitched()[c - half:c + half + 1, c - half:c + half + 1]

    def phase_profile(self) -> np.ndarray:
        """Mean |east-west step| by column position inside the tile (the last one crosses the border)."""
        dx = np.abs(np.diff(self.stitched(), axis=1)).mean(axis=0)
        return dx[:(self.k - 1) * self.n].reshape(self.k - 1, self.n).mean(axis=0)  # every last step a border


def grid_run(root: Path, models: tuple[TerrainModel, TerrainModel], quality: str, lod: int, k: int) -> GridRun:
    create_world(root, SEED, WorldSettings(STYLE, quality=quality), *models)
    world = TileWorld(root, *models)
    start, cpu = time.perf_counter(), time.process_time()
    tiles = {(x, y): world.tile((x, y), lod) for y in range(k) for x in range(k)}
    wall, cpu = (time.perf_counter() - start) / len(tiles), (time.process_time() - cpu) / len(tiles)
    period = world.factor ** (world.levels - 1 - lod)
    return GridRun(quality, lod, k, tiles, world.store.cell_size * world.factor ** lod, period, world.block_tiles,
                   cpu, wall)


def edit_demo(root: Path, models: tuple[TerrainModel, TerrainModel]) -> tuple[list[Heightfield], str]:
    """Edit tile (0, 0) (a raised plateau on its east half), then generate (1, 0): with and without the edit."""
    worlds = []
    root.mkdir()
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
            f"(samples 1, 4, 16, 64, {n}): " + ", ".join(f"{raised[i]:.0f} m" for i in (1, 4, 16, 64, n)) + ". "
            f"Mean |east-west step| from the edge into the neighbour / over both tiles: "
            f"{edge_step_ratio(sheets[1].heights, n):.2f} (1 = no wall).")
    return sheets, text


@dataclass
class ErosionRun:
    stage: str
    k: int
    tiles: dict[tuple[int, int], np.ndarray]  # eroded
    uneroded: dict[tuple[int, int], np.ndarray]  # the same world without the stage, one tile further each side
    cell: float
    cpu_per_tile: float

    def row(self, world: TileWorld) -> str:
        """Seams of the eroded grid, of the same grid uneroded, and of one erosion of the whole uneroded
        neighbourhood (what the tiles approximate: no tile borders at all in its erosion)."""
        n, k = next(iter(self.tiles.values())).shape[0] - 1, self.k
        eroded = stitch(self.tiles, range(k), range(k))
        plain = stitch(self.uneroded, range(-1, k + 1), range(-1, k + 1))
        whole = erode(plain.astype(np.float64), self.cell, world.erosion)[n:-n, n:-n]
        half = n // 2
        depth = np.abs(whole - plain[n:-n, n:-n]).mean()
        return (f"| {self.stage} | {k}x{k} | {seam_ratio(eroded, n, world.factor):.3f} | "
                f"{seam_ratio(eroded[half:, half:], n, world.factor):.3f} | "
                f"{seam_ratio(plain[n:-n, n:-n], n, world.factor):.3f} | {seam_ratio(whole, n, world.factor):.3f} | "
                f"{depth:.1f} m | {np.abs(eroded - whole).mean() / depth:.3f} | {self.cpu_per_tile:.1f} |")


def erosion_runs(root: Path, models: tuple[TerrainModel, TerrainModel], stages: list[str],
                 k: int) -> tuple[list[str], list[ErosionRun]]:
    """Eroded k x k grids, one per stage, and their table rows. The worlds differ only in their erosion stage,
    so they share the uneroded tiles and base canvases (the same functions of seed and coordinates)."""
    rows, runs, shared = [], [], None
    for stage in stages:
        create_world(root / stage, SEED, WorldSettings(STYLE, erosion_stage=stage), *models)
        world = TileWorld(root / stage, *models)
        if shared is not None:
            world.sampled, world.blocks = shared.sampled, shared.blocks
        cpu = time.process_time()
        tiles = {(x, y): world.tile((x, y)) for y in range(k) for x in range(k)}
        cpu = (time.process_time() - cpu) / len(tiles)
        uneroded = {(x, y): world._sampled((x, y), world.levels, None) for y in range(-1, k + 1) for x in range(-1, k + 1)}
        run = ErosionRun(stage, k, tiles, uneroded, world.store.cell_size, cpu)
        rows.append(run.row(world))
        print(rows[-1], flush=True)
        runs.append(run)
        shared = shared or world
    return rows, runs


def profile_plot(runs: list[GridRun], path: Path) -> None:
    """Mean |step| by position inside the tile, one line per run, normalised by its own mean."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.2))
    for run in runs:
        profile = run.phase_profile()
        ax.plot(np.arange(run.n) / run.n, profile / profile.mean(), lw=0.8,
                label=f"{run.quality}, lod {run.lod} (last step crosses the border: {profile[-1] / profile.mean():.2f})")
    ax.set_xlabel("column position inside the tile (fraction; 1 = the border step to the next tile)")
    ax.set_ylabel("mean |east-west step| / mean")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "world_tiling")
    ap.add_argument("--runs", default=RUNS, help="quality:lod:grid,... (grid = largest tiles per side)")
    ap.add_argument("--models-dir", type=Path, default=MODELS_DIR)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (CPU s per tile stays comparable)")
    ap.add_argument("--erosion", default=EROSION_STAGES_RUN, help="erosion stages of the eroded-world section")
    ap.add_argument("--erosion-grid", type=int, default=EROSION_GRID, help="eroded tiles per side")
    ap.add_argument("--erosion-only", action="store_true", help="remake erosion.md only (minutes, not an hour)")
    return ap.parse_args()


def main() -> None:
    args = parse_args()
    if not shipped_models_present(args.models_dir):
        raise SystemExit(f"no models in {args.models_dir}: train them first (scripts/train_models.sh)")
    torch.set_num_threads(args.threads)
    models = TerrainModel.load(args.models_dir / BASE_FILE), TerrainModel.load(args.models_dir / SUPERRES_FILE)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.erosion:
        erosion_report(args, models)
    if not args.erosion_only:
        tiling_report(args, models)


def erosion_report(args: argparse.Namespace, models: tuple[TerrainModel, TerrainModel]) -> None:
    """erosion.md and erosion_maps.png: seams of eroded worlds against the uneroded world and one erosion of it."""
    with tempfile.TemporaryDirectory() as tmp:
        rows, runs = erosion_runs(Path(tmp), models, args.erosion.split(","), args.erosion_grid)
    k = args.erosion_grid
    plain = {c: t for c, t in runs[0].uneroded.items() if 0 <= min(c) and max(c) < k}
    maps = [Heightfield(stitch(plain, range(k), range(k)), runs[0].cell)] + \
        [Heightfield(stitch(r.tiles, range(k), range(k)), r.cell) for r in runs]
    contact_sheet(maps, args.out / "erosion_maps.png",
                  [f"no erosion, {k}x{k} tiles"] + [f"{r.stage} erosion, {k}x{k} tiles" for r in runs], cols=3)
    command = "python reports/make_world_report.py --erosion-only" + (
        "" if args.erosion == EROSION_STAGES_RUN and args.erosion_grid == EROSION_GRID else
        f" --erosion {args.erosion} --erosion-grid {args.erosion_grid}")
    text = f"""# Infinite world tiles with the erosion stage: seams

Made by `{command}` (also part of `python reports/make_world_report.py`) with the models in `models/` (seed
{SEED}, style {STYLE}, interactive quality, lod 0) on {cpu_model()} ({os.cpu_count()} cores; torch
{torch.__version__}, {args.threads} thread(s)).

Stream power is not local, so a tile cannot erode alone: an eroded tile is the centre of one erosion of the
uneroded world around it, the mosaic of its 3 x 3 neighbourhood of uneroded tiles cut to {EROSION_MARGIN_M:g} m
({EROSION_MARGIN_M / runs[0].cell:g} cells) of context each side (`backend/world/tiles.py`, `TileWorld._eroded`).
Uneroded tiles are pure functions of (seed, coordinates, edits in reach), so every tile erodes the very same
heights where its context overlaps a neighbour's, and eroded tiles stay pure functions too. (Eroding each tile's
own wider super-resolution canvas instead made mature erosion's borders read 1.15: it amplified the small
differences between two tiles' canvases.)

**Seam ratio** as in [README.md](README.md) (border steps / interior steps at the same phase; 1 = no seam), for the
eroded grid, its mid-tile lines (**control**), the same grid uneroded, and **one erosion of the whole
uneroded neighbourhood** ((k + 2)² tiles as one map, no tile borders in its erosion: what the tiles
approximate). **Mean depth**: mean |whole-map erosion - uneroded|. **Tiles vs whole**: mean |eroded tiles -
whole-map erosion| / mean depth (0 = the tiles are exactly the whole map's erosion). CPU s per eroded tile: the
first row includes sampling the (k + 2)² uneroded tiles; later rows share them. Erosion concentrates the steps
in a few valley walls, so on the few border lines of a small grid the seam ratio is noisy (the control lines
and the whole-map erosion, which has no borders, stray as far from 1); that the tiles equal the whole-map
erosion to within a few percent of its depth (tiles vs whole) is what says the tiling adds no seam. The uneroded
world's own seams over bigger grids: [README.md](README.md).

| stage | grid | seam ratio: eroded tiles | control (no border) | uneroded | whole-map erosion | mean depth | tiles vs whole | CPU s/tile |
|---|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

![eroded worlds](erosion_maps.png)
"""
    (args.out / "erosion.md").write_text(text)
    print(text)


def tiling_report(args: argparse.Namespace, models: tuple[TerrainModel, TerrainModel]) -> None:
    """README.md and its PNGs: seams of uneroded worlds per quality and level, and the edit's continuation."""
    specs = [(q, int(lod), int(k)) for q, lod, k in (r.split(":") for r in args.runs.split(","))]
    table = ["| quality (steps base/superres) | level (samples/tile) | grid | seam ratio: all | within blocks | "
             "between blocks | control (no border) | shared-edge mismatch: within | between | CPU s/tile (wall) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    runs: list[GridRun] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (quality, lod, k) in enumerate(specs):
            run = grid_run(Path(tmp) / f"run{i}", models, quality, lod, k)
            q = QUALITY[quality]
            for row in run.rows():
                table.append(f"| {quality} ({q.base_steps}/{q.superres_steps}) | lod {lod} ({run.n + 1}²) | "
                             f"{row.size}x{row.size} | {row.all:.3f} | {row.within:.3f} | {row.between:.3f} | "
                             f"{row.control:.3f} | {row.mismatch_within:.3f} | {row.mismatch_between:.3f} | "
                             f"{run.cpu_per_tile:.1f} ({run.wall_per_tile:.1f}) |")
                print(table[-1], flush=True)
            runs.append(run)
        maps = [Heightfield(run.stitched(), run.cell) for run in runs]
        contact_sheet(maps, args.out / "world_maps.png",
                      [f"{r.quality}, lod {r.lod}, {r.k}x{r.k} tiles" for r in runs], cols=2)
        contact_sheet([Heightfield(r.corner_zoom(), r.cell) for r in runs], args.out / "tile_corners.png",
                      [f"{r.quality}, lod {r.lod}: 4 tiles meet at the centre" for r in runs], cols=2)
        profile_plot(runs, args.out / "border_profile.png")
        sheets, edit_text = edit_demo(Path(tmp) / "edit", models)
        contact_sheet(sheets, args.out / "edit_respect.png",
                      ["east tile generated without the edit", "east tile generated after the edit"], cols=1)
    command = "python reports/make_world_report.py" + ("" if args.runs == RUNS else f" --runs {args.runs}")
    readme = f"""# Infinite world tiles: seams and edit respect

Made by `{command}` with the models in `models/` (seed {SEED}, style {STYLE}) on
{cpu_model()} ({os.cpu_count()} cores; torch {torch.__version__}, {args.threads} thread(s)); runs (quality:lod:grid)
`{args.runs}`{"" if args.runs == RUNS else f" (the default adds more: `{RUNS}`)"}.
The base level is sampled per block of {BLOCK_TILES}x{BLOCK_TILES} tiles: one MultiDiffusion canvas over
world-seeded noise with {base_margin(models[0].meta['resolution'])} base cells of context on each side (`backend/world/region.py`,
`backend/world/tiles.py`); each super-resolution runs on the tile's own canvas ({SUPERRES_MARGIN} fine cells of
context). lod 1 is the base level only (every {models[1].meta["factor"]}th sample of lod 0 each way), what
explore mode shows far away.

**Seam ratio**: mean |gradient| across tile borders / mean |gradient| over interior steps at the same
position modulo the super-resolution factor (1 = borders look like anywhere else), over all borders, the
borders inside a block and those between blocks. **Control**: the same statistic on the mid-tile lines,
where there is no border. Tile borders lie on the base level's MultiDiffusion window grid (windows of 64 cells
every 32), and where one window dominates the blend, steps are ~10 % larger than where two share it
equally (averaging smooths): the mid-tile lines lie on that grid too, so the control is what a border-free
window-grid line reads on these maps; a border with no seam reads like it, within the lines' sampling noise. Maps are
stitched as explore mode shows them (`backend.world.tiles.stitch`: a shared edge sample comes from the
east/south tile). **Shared-edge mismatch**: mean |difference| of the edge samples two neighbours both hold /
the mean interior step (0 = they agree: tiles of one block read the same canvas; blocks are computed
separately, so they may differ slightly). Sub-grids are the top-left corner of each run's largest grid (tiles
do not depend on which others were asked for, so a 4x4 inside an 8x8 is a 4x4 map); a 2x2 there is one block.

{chr(10).join(table)}

Worlds with the erosion stage: [erosion.md](erosion.md).

![world maps](world_maps.png)

Full resolution around the point where four tiles meet (the centre of each panel):

![tile corners](tile_corners.png)

Mean |east-west step| by position inside the tile, over the whole map (the last position is the step
across the border; lod 0 alternates with the x4 super-resolution phase):

![border profile](border_profile.png)

## Respect for an earlier edit

{edit_text}

![edit respect](edit_respect.png)
"""
    (args.out / "README.md").write_text(readme)
    print(readme)


if __name__ == "__main__":
    main()
