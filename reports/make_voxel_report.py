"""Regenerate reports/voxels/: what the voxel chunk model draws under held-out terrain, and what refinement does.

    python reports/make_voxel_report.py [--model models/voxel_chunks.safetensors] [--positions 4] [--seeds 2]

Per style, chunks at random places under held-out corpus maps (shrunk to 8 m cells like the voxel corpus),
the chunk level holding the terrain surface, several world seeds, each through the four refinements
(raw model; delete floating pieces; re-mask and redraw; annealed Gibbs). Measures per chunk
(``backend.voxels.measures``): cave volume and connectivity, overhang share, the energy's violations, the
seconds of sampling and of refinement; diversity across seeds; the seam after outpainting an east
neighbour against the mismatch across interior planes. The same measures on the voxel corpus's chunks are
the reference. Renders: slices through chunks and a cave system of 2 x 2 outpainted chunks, meshed by
``backend.meshing.voxels``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from itertools import product
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # allow `python reports/make_voxel_report.py` from anywhere
    sys.path.insert(0, str(ROOT))

from backend.data.datasets import load_maps  # noqa: E402
from backend.data.voxel_corpus import MAP_CELL_M, VoxelRegions, load_regions  # noqa: E402
from backend.generators.voxel_chunks import (REFINEMENTS, VoxelChunkRequest, canvas_axes,  # noqa: E402
                                             generate_chunk_with_stats, terrain_depth)
from backend.models.voxel import VOXEL_QUALITY, VoxelModel  # noqa: E402
from backend.voxels import channels as ch  # noqa: E402
from backend.voxels import passages  # noqa: E402
from backend.voxels.chunk import CHUNK, PALETTE, ChunkKey, VoxelChunk  # noqa: E402
from backend.voxels.measures import chunk_measures, solidity_difference  # noqa: E402

OUT = ROOT / "reports" / "voxels"
VOXEL_M = 2.0
SIDE_M = CHUNK * VOXEL_M
MEASURES = ("cave_share", "largest_system", "systems", "open_to_sky", "elongation", "overhang_columns")
TERMS = ("floating", "thin_overhang", "unheld_water", "lava_water")


def mean_of(rows: list[dict], measure: str) -> float:
    """The mean of a measure over the rows that have it (elongation is NaN for a chunk without a cave to shape)."""
    found = [r[measure] for r in rows if not np.isnan(r[measure])]
    return float(np.mean(found)) if found else float("nan")


def place(heights: np.ndarray, rng: np.random.Generator) -> ChunkKey:
    """A chunk of the (shrunk) map away from its edges, at the level holding the terrain surface there."""
    n = int(heights.shape[0] * MAP_CELL_M // SIDE_M)
    i, j = (int(v) for v in rng.integers(1, n - 2, 2))
    r, c = int((j + 0.5) * SIDE_M / MAP_CELL_M), int((i + 0.5) * SIDE_M / MAP_CELL_M)
    return ChunkKey(i, j, int(np.floor(heights[r, c] / SIDE_M)))


def request_for(heights: np.ndarray, key: ChunkKey, style: str, seed: int, **more) -> VoxelChunkRequest:
    return VoxelChunkRequest(heights, MAP_CELL_M, (0.0, 0.0), key, VOXEL_M, world_seed=seed,
                             style_weights={style: 1.0}, **more)


def depth_of(req: VoxelChunkRequest) -> np.ndarray:
    z, y, x = canvas_axes(req.key, VOXEL_M, 0)
    return terrain_depth(req, z, y, x)


def run_style(model: VoxelModel, style: str, maps: list[np.ndarray], positions: int, seeds: int,
              rng: np.random.Generator) -> dict:
    """Every chunk of one style through every refinement: measures, violations, seconds, diversity, seams."""
    rows, diversity, seams, examples, places = [], [], [], [], []
    for p in range(positions):
        heights = maps[p % len(maps)]
        key = place(heights, rng)
        places.append((style, heights, key))
        finals = []
        for seed in range(seeds):
            for refinement in REFINEMENTS:
                req = request_for(heights, key, style, seed, refinement=refinement)
                t0 = time.perf_counter()
                chunk, stats = generate_chunk_with_stats(model, req)
                depth = depth_of(req)
                rows.append({"refinement": refinement, "seconds": time.perf_counter() - t0,
                             "sample_s": stats.sample_s, "refine_s": stats.refine_s,
                             "raw": stats.violations_raw, "final": stats.violations_final,
                             "trace": stats.anneal_trace, **chunk_measures(chunk.solid, depth)})
                if refinement == "anneal":
                    with as_drawn():
                        drawn, _ = generate_chunk_with_stats(model, req)
                    drawn_measures = chunk_measures(drawn.solid, depth)
                    rows[-1].update(cave_share_as_drawn=drawn_measures["cave_share"],
                                    elongation_as_drawn=drawn_measures["elongation"])
                    finals.append(chunk)
                    if seed == 0:
                        examples.append((req, chunk))
        diversity += [solidity_difference(a.solid, b.solid, depth_of(request_for(heights, key, style, 0)))
                      for n, a in enumerate(finals) for b in finals[n + 1:]]
        seams.append(seam_ratio(model, heights, key, style))
    return {"rows": rows, "diversity": diversity, "seams": seams, "examples": examples, "places": places}


@contextmanager
def as_drawn() -> Iterator[None]:
    """Chunks decoded as the model drew them: caves neither grown through its haze (``channels.CAVE_REACH``) nor
    joined by passages (``passages.PASSAGES``): the ablation beside each annealed chunk."""
    reach, settings = ch.CAVE_REACH, passages.PASSAGES
    ch.CAVE_REACH, passages.PASSAGES = math.inf, replace(settings, reach=0.0)
    try:
        yield
    finally:
        ch.CAVE_REACH, passages.PASSAGES = reach, settings


def seam_ratio(model: VoxelModel, heights: np.ndarray, key: ChunkKey, style: str) -> dict[str, float]:
    """Mean |tsdf| jump across the face to an outpainted east neighbour, and across interior planes."""
    west, _ = generate_chunk_with_stats(model, request_for(heights, key, style, 0))
    east_key = ChunkKey(key.i + 1, key.j, key.k)
    east, _ = generate_chunk_with_stats(model, request_for(heights, east_key, style, 0,
                                                           neighbours={(-1, 0, 0): west}))
    a, b = ch.tsdf(west.density, VOXEL_M), ch.tsdf(east.density, VOXEL_M)
    interior = float(np.mean([np.abs(np.diff(t, axis=2)).mean() for t in (a, b)]))
    return {"face": float(np.abs(b[:, :, 0] - a[:, :, -1]).mean()), "interior": interior}


SLIDER_SETTINGS = {"both 0": {"cave_density": 0.0, "overhang": 0.0}, "both 1": {"cave_density": 1.0, "overhang": 1.0},
                   "cave density 1": {"cave_density": 1.0}, "overhang 1": {"overhang": 1.0}}


def slider_response(model: VoxelModel, places: list[tuple[str, np.ndarray, ChunkKey]]) -> dict[str, dict]:
    """Cave share and overhang columns of the same chunks (places, seeds 0 and 1) at each of SLIDER_SETTINGS
    (an unsent slider is 0.5)."""
    out = {}
    for name, sliders in SLIDER_SETTINGS.items():
        found = []
        for style, heights, key in places:
            for seed in (0, 1):
                req = request_for(heights, key, style, seed, sliders=sliders)
                found.append(chunk_measures(generate_chunk_with_stats(model, req)[0].solid, depth_of(req)))
        out[name] = {m: float(np.mean([f[m] for f in found])) for m in ("cave_share", "overhang_columns")}
    return out


def surface_measures(regions: VoxelRegions, n: int, boxes: Iterable[tuple[slice, ...]]) -> list[dict[str, float]]:
    """The measures of region ``n``'s chunks among ``boxes`` that the ground's surface crosses."""
    depth_all = regions.terrain_depth(n)
    return [chunk_measures(regions.density[n][box] > 0, depth_all[box]) for box in boxes
            if (depth_all[box] > 0).any() and (depth_all[box] <= 0).any()]


def corpus_slider_response(regions: VoxelRegions) -> dict[str, dict[str, float]]:
    """The voxel corpus's own response: its surface chunks' measures where a region's slider was drawn in
    the lowest or the highest third."""
    rows = []
    for n in range(len(regions)):
        boxes = (tuple(slice(b * CHUNK, (b + 1) * CHUNK) for b in box)
                 for box in product(*(range(s // CHUNK) for s in regions.density.shape[1:])))
        rows += [[*regions.sliders[n][:2], found["cave_share"], found["overhang_columns"]]
                 for found in surface_measures(regions, n, boxes)]
    table_ = np.array(rows)
    out = {}
    for i, name in enumerate(("cave_density", "overhang")):
        for label, pick in (("low", table_[:, i] < 1 / 3), ("high", table_[:, i] > 2 / 3)):
            out[f"{name} {label}"] = {"cave_share": float(table_[pick, 2].mean()),
                                      "overhang_columns": float(table_[pick, 3].mean()), "chunks": int(pick.sum())}
    return out


def corpus_reference(regions: VoxelRegions, per_style: int = 12) -> dict[str, dict[str, float]]:
    """The measures on the voxel corpus's chunks at the surface level (its middle chunks), per style."""
    found: dict[str, list[dict[str, float]]] = {}
    for n in range(len(regions)):
        style = regions.style_names[int(regions.style[n])]
        if len(found.get(style, [])) >= per_style:
            continue
        middle = ((slice(kz * CHUNK, (kz + 1) * CHUNK), slice(CHUNK, 2 * CHUNK), slice(CHUNK, 2 * CHUNK))
                  for kz in range(regions.density.shape[1] // CHUNK))
        found.setdefault(style, []).extend(surface_measures(regions, n, middle))
    return {s: {m: mean_of(rs, m) for m in MEASURES} for s, rs in found.items()}


def material_image(material: np.ndarray) -> np.ndarray:
    """(Z, W, 3) colours of a vertical slice of materials, z up, air as pale sky."""
    colours = np.array([c for _, c in PALETTE], np.float32) / 255
    colours[0] = (0.86, 0.91, 0.96)
    return colours[material[::-1]]


def render_slices(examples: dict[str, tuple[VoxelChunkRequest, VoxelChunk]], path: Path) -> None:
    import matplotlib.pyplot as plt

    rows = list(examples)
    fig, axes = plt.subplots(len(rows), 3, figsize=(7.5, 2.3 * len(rows)))
    for r, style in enumerate(rows):
        chunk = examples[style][1]
        for c, row in enumerate((8, 16, 24)):
            ax = axes[r, c]
            ax.imshow(material_image(chunk.material[:, row, :]), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(style, fontsize=8)
            if r == 0:
                ax.set_title(f"row {row} (x-z slice)", fontsize=8)
    fig.suptitle("Generated chunks (interactive, annealed), 2 m voxels: materials on vertical slices", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def outpainted_block(model: VoxelModel, heights: np.ndarray, key: ChunkKey, style: str,
                     seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Density and terrain depth of 2 x 2 x 2 chunks (``key`` and the level below), each outpainted from
    the ones generated before it."""
    chunks: dict[tuple[int, int, int], VoxelChunk] = {}
    for dk, dj, di in ((-1, 0, 0), (-1, 0, 1), (-1, 1, 0), (-1, 1, 1), (0, 0, 0), (0, 0, 1), (0, 1, 0), (0, 1, 1)):
        near = {(a - di, b - dj, c - dk): chunk for (c, b, a), chunk in chunks.items()}
        k = ChunkKey(key.i + di, key.j + dj, key.k + dk)
        req = request_for(heights, k, style, seed, neighbours=near, sliders={"cave_density": 1.0, "overhang": 1.0})
        chunks[(dk, dj, di)] = generate_chunk_with_stats(model, req)[0]
    density = np.block([[[chunks[(dk, dj, di)].density for di in (0, 1)] for dj in (0, 1)] for dk in (-1, 0)])
    bottom = ChunkKey(key.i, key.j, key.k - 1)
    z, y, x = canvas_axes(bottom, VOXEL_M, 0)
    steps = VOXEL_M * np.arange(2 * CHUNK)
    return density, terrain_depth(request_for(heights, bottom, style, seed), z[0] + steps, y[0] - steps, x[0] + steps)


def _draw_mesh(ax, density: np.ndarray, colour: tuple[float, float, float], title: str) -> int:
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    from backend.meshing.voxels import voxel_mesh

    vertices, faces = voxel_mesh(density, 0.0, VOXEL_M)
    tris = vertices[faces]
    normals = np.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0])
    normals /= np.linalg.norm(normals, axis=1, keepdims=True) + 1e-9
    light = np.clip(normals @ np.array([0.4, 0.5, 0.77]), 0.15, 1.0)[:, None]
    ax.add_collection3d(Poly3DCollection(tris, facecolors=light * np.array(colour), linewidths=0))
    hi = np.array(density.shape[::-1], np.float32) * VOXEL_M * np.array([1, -1, 1])  # the block's extent
    lo = np.minimum(hi, 0)
    hi = np.maximum(hi, 0)
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_zlim(lo[2], hi[2])
    ax.set_box_aspect(hi - lo + 1e-6)
    ax.view_init(elev=28, azim=-60)
    ax.set_axis_off()
    ax.set_title(title, fontsize=8)
    return len(faces)


def corpus_block(folder: Path, style: str) -> tuple[np.ndarray, np.ndarray]:
    """Density and terrain depth of the 2 x 2 x 2 chunks of the style's voxel corpus with the most cave
    volume (the corpus at its richest, to set beside the model's richest)."""
    regions = load_regions(folder)
    best, best_caves = None, -1
    for n in np.flatnonzero(np.array(regions.style_names)[regions.style] == style):
        depth = regions.terrain_depth(n)
        for j in (0, CHUNK):
            box = (slice(0, 2 * CHUNK), slice(j, j + 2 * CHUNK), slice(j, j + 2 * CHUNK))
            caves = int(((regions.density[n][box] <= 0) & (depth[box] > 0)).sum())
            if caves > best_caves:
                best, best_caves = (n, box), caves
    n, box = best
    return regions.density[n][box].astype(np.float32), regions.terrain_depth(n)[box]


def render_caves(model: VoxelModel, heights: np.ndarray, key: ChunkKey, style: str, corpus: Path,
                 path: Path) -> dict:
    """The ground of 2 x 2 x 2 outpainted chunks, its caves alone, and a corpus block's caves beside them."""
    import matplotlib.pyplot as plt

    density, depth = outpainted_block(model, heights, key, style, seed=0)
    reference, reference_depth = corpus_block(corpus, style)
    fig = plt.figure(figsize=(15, 5))
    n_ground = _draw_mesh(fig.add_subplot(1, 3, 1, projection="3d"), density, (0.62, 0.58, 0.52),
                          f"{style}: ground of 2 x 2 x 2 outpainted chunks (128 m a side)")
    n_caves = _draw_mesh(fig.add_subplot(1, 3, 2, projection="3d"), np.where(depth > 0, -density, -1.0),
                         (0.35, 0.55, 0.8), "the same block's caves alone (open space under the terrain)")
    _draw_mesh(fig.add_subplot(1, 3, 3, projection="3d"), np.where(reference_depth > 0, -reference, -1.0),
               (0.8, 0.5, 0.35), f"caves of a voxel corpus block of {style} (what the model learned from)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return {"style": style, "key": [key.i, key.j, key.k], "ground_faces": n_ground, "cave_faces": n_caves,
            "cave_share": float(((density <= 0) & (depth > 0)).sum() / max((depth > 0).sum(), 1)),
            "corpus_block_cave_share": float(((reference <= 0) & (reference_depth > 0)).sum()
                                             / max((reference_depth > 0).sum(), 1))}


def summarise(results: dict[str, dict], reference: dict[str, dict[str, float]]) -> dict:
    """Per style and per refinement: the figures the README shows."""
    per_style, per_refinement = {}, {}
    for style, res in results.items():
        final = [r for r in res["rows"] if r["refinement"] == "anneal"]
        seams = res["seams"]
        per_style[style] = {**{m: mean_of(final, m) for m in MEASURES},
                            "cave_share_as_drawn": float(np.mean([r["cave_share_as_drawn"] for r in final])),
                            "elongation_as_drawn": float(np.nanmean([r["elongation_as_drawn"] for r in final])),
                            "diversity": float(np.mean(res["diversity"])) if res["diversity"] else float("nan"),
                            "seam_ratio": float(np.mean([s["face"] for s in seams]) /
                                                max(np.mean([s["interior"] for s in seams]), 1e-9)),
                            "corpus": reference.get(style, {})}
    rows = [r for res in results.values() for r in res["rows"]]
    for refinement in REFINEMENTS:
        mine = [r for r in rows if r["refinement"] == refinement]
        per_refinement[refinement] = {
            "chunks": len(mine),
            "chunks_with_floating_before": float(np.mean([r["raw"]["floating"] > 0 for r in mine])),
            "chunks_with_floating_after": float(np.mean([r["final"]["floating"] > 0 for r in mine])),
            **{f"{t}_cells_after": float(np.mean([r["final"][t] for r in mine])) for t in TERMS},
            **{f"{t}_cells_before": float(np.mean([r["raw"][t] for r in mine])) for t in TERMS},
            "median_seconds": float(np.median([r["seconds"] for r in mine])),
            "median_sample_s": float(np.median([r["sample_s"] for r in mine])),
            "refine_share_of_time": float(np.sum([r["refine_s"] for r in mine])
                                          / np.sum([r["sample_s"] + r["refine_s"] for r in mine])),
        }
    seams = [s for res in results.values() for s in res["seams"]]
    overall_seam = float(np.mean([s["face"] for s in seams]) / np.mean([s["interior"] for s in seams]))
    traces = [r["trace"] for r in rows if r["refinement"] == "anneal" and r["trace"]]
    mean_trace = np.mean(traces, axis=0).tolist() if traces else []
    return {"per_style": per_style, "per_refinement": per_refinement, "anneal_trace_mean": mean_trace,
            "seam_ratio_all": overall_seam}


def table(header: list[str], rows: list[list[str]]) -> str:
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
                     + ["| " + " | ".join(r) + " |" for r in rows])


def kinds_table(path: Path) -> str:
    """The table of ``compare_voxel_diffusion.py``'s last run (it writes the file), or a note that it has none."""
    if not path.is_file():
        return "(not measured yet: run reports/compare_voxel_diffusion.py)"
    return "\n".join(line for line in path.read_text().splitlines() if line.startswith("|"))


def write_readme(summary: dict, meta: dict, render: dict, settings: dict) -> None:
    per_style, per_ref = summary["per_style"], summary["per_refinement"]
    style_rows = [[s, f"{v['cave_share']:.3f} ({v['corpus'].get('cave_share', float('nan')):.3f})",
                   f"{v['cave_share_as_drawn']:.3f}, {v['elongation_as_drawn']:.2f}",
                   f"{v['largest_system']:.2f} ({v['corpus'].get('largest_system', float('nan')):.2f})",
                   f"{v['systems']:.1f} ({v['corpus'].get('systems', float('nan')):.1f})",
                   f"{v['open_to_sky']:.2f} ({v['corpus'].get('open_to_sky', float('nan')):.2f})",
                   f"{v['elongation']:.2f} ({v['corpus'].get('elongation', float('nan')):.2f})",
                   f"{v['overhang_columns']:.3f} ({v['corpus'].get('overhang_columns', float('nan')):.3f})",
                   f"{v['diversity']:.2f}", f"{v['seam_ratio']:.2f}"] for s, v in per_style.items()]
    ref_rows = [[r, f"{100 * v['chunks_with_floating_before']:.0f} %", f"{100 * v['chunks_with_floating_after']:.1f} %",
                 f"{v['thin_overhang_cells_before']:.1f} -> {v['thin_overhang_cells_after']:.1f}",
                 f"{v['unheld_water_cells_before']:.1f} -> {v['unheld_water_cells_after']:.1f}",
                 f"{v['lava_water_cells_before']:.1f} -> {v['lava_water_cells_after']:.1f}",
                 f"{v['median_seconds']:.2f}", f"{100 * v['refine_share_of_time']:.0f} %"]
                for r, v in per_ref.items()]
    trace = ", ".join(f"{e:.1f}" for e in summary["anneal_trace_mean"])
    text = README.format(
        settings=json.dumps(settings), params=meta.get("run", {}).get("parameters", "?"),
        style_table=table(["style", "cave share", "as drawn: share, elongation", "largest system", "systems",
                           "open to sky", "elongation", "overhang columns", "seed diversity", "seam / interior"],
                          style_rows),
        ref_table=table(["refinement", "chunks with floating (raw)", "after", "thin overhang cells",
                         "unheld water cells", "lava-water cells", "median s / chunk", "refinement share"], ref_rows),
        trace=trace, render=json.dumps(render), seam_all=summary["seam_ratio_all"],
        **summary["over_styles"],
        kinds_table=kinds_table(OUT / "diffusion_kinds.md"),
        sliders=table(["sliders", "cave share", "overhang columns"],
                      [[v, f"{r['cave_share']:.4f}", f"{r['overhang_columns']:.4f}"]
                       for v, r in summary["slider_response"].items()]),
        corpus_sliders=table(["corpus regions with", "surface chunks", "cave share", "overhang columns"],
                             [[v, str(r["chunks"]), f"{r['cave_share']:.4f}", f"{r['overhang_columns']:.4f}"]
                              for v, r in summary["corpus_slider_response"].items()]),
        guidance=VOXEL_QUALITY["interactive"].slider_guidance)
    (OUT / "README.md").write_text(text)


README = """# Voxel chunks: caves, overhangs and arches under held-out terrain

Made by `python reports/make_voxel_report.py` (settings {settings}); the model is
`models/voxel_chunks.safetensors` ({params} parameters; its training in
`models/voxel_chunks.md`). Chunks of 32³ cells at 2 m under held-out corpus maps (shrunk to 8 m cells,
slopes kept, as the voxel corpus is), at the chunk level holding the terrain surface, interactive setting
(4 DPM-Solver++ steps on the chunk and 4 cells around it, 40³ cells folded 2³ into channels; known
neighbour cells feather 2 cells into the chunk). Figures in brackets: the same
measure on the voxel corpus's surface chunks of the style (the simulation the model learned from).

## Per style (annealed output)
Cave share: open cells among those under the terrain; as drawn: the same chunks decoded with the caves as the model
drew them, neither grown through its haze (`backend/voxels/channels.py`, `CAVE_REACH`) nor joined by passages
(`backend/voxels/passages.py`). Largest system: the biggest
6-connected cave's share of the cave volume; systems: how many. Open to sky: cave volume connected to the open
air above the terrain. Elongation: tunnels or pockets; per cave of at least 20 cells, its length along its principal
axis over twice its largest inscribed radius (a ball about 1, a worm tunnel several), volume-weighted, mean over
the chunks with such a cave (`backend/voxels/measures.py`); over the styles {elongation:.2f}, as drawn
{elongation_as_drawn:.2f} ({corpus_elongation:.2f}). Overhang columns: columns with rock over open air above the terrain surface. Seed
diversity: share of the cells differing from the terrain in either of two world seeds' chunks (same place)
that differ between them (0 = identical, 1 = disjoint features). Seam / interior: mean jump of the truncated
density across the face to an east neighbour outpainted from this chunk, over the mean jump across interior
planes (target at most 1.2; over all styles' chunks {seam_all:.2f}). Cave share against the corpus's, geometric
mean over the styles: {grown:.2f} served, {as_drawn:.2f} as drawn.

{style_table}

## Sliders
The same chunks (one place per style, two seeds) with the sliders set as named (an unsent slider is 0.5),
sampled with classifier-free guidance {guidance:g} on the sliders alone:

{sliders}

The voxel corpus's own response (its surface chunks, by the slider drawn for their region: lowest and
highest third):

{corpus_sliders}

## Refinement ablation (all styles)
Floating pieces: solid pieces touching none of the chunk's faces. Cells: mean per chunk, raw -> after.
Refinement share: refinement seconds over sampling plus refinement seconds.

{ref_table}

Annealed energy (local terms, weighted) along the schedule, mean over chunks, before the first stage and
after each: {trace}.

## Choices
Continuous diffusion over three channels, not masked discrete diffusion over cell classes, measured at a
reduced, equal budget by `reports/compare_voxel_diffusion.py` ([diffusion_kinds.md](diffusion_kinds.md)): the
same small 3D U-Net, windows and conditions, 480 CPU seconds of training each (side by side, one thread each,
load about 4-5), 4 sampling steps each, held-out windows with the west neighbour known. The discrete model
drew more of the held-out cave volume and continued the known neighbour about as the truth does, but the
cells it unmasks in one step are drawn independently, so it left several times the isolated specks, floating
rock in far more windows and more local violations for the refinement to clean, at about the same seconds.
The continuous model's truncated density keeps the surface's sub-cell position, so outside features the
chunk meets the terrain mesh exactly (a class per cell cannot), and feathering the known cells (the product's
outpainting) closes its seam. So continuous stays. Its shortfall is too few caves (a fifth of the held-out
cave share; the discrete model reached about three fifths), as in the shipped model, whose caves the
product's decode now grows through the haze of hedged cells around them (the per-style table; this comparison
decodes without growing). One training run each on a small corpus: a first measurement, not a settled one. The
layered materials (cover, dirt, strata) follow a rule of the geometry in both; the models draw geometry,
fluids and ores.

{kinds_table}

## Renders
![slices](slices.png)

![cave system](cave_system.png)

Cave system render: {render}.
"""


def committed_log(run_log: str | Path, out: Path) -> Path | None:
    """``out``/training_log.csv: the run's metrics.csv copied there when the run folder is here, else the copy
    committed earlier (None when neither exists)."""
    log = out / "training_log.csv"
    if Path(run_log).is_file():
        log.write_bytes(Path(run_log).read_bytes())
    return log if log.is_file() else None


def training_curve(metrics_csv: Path, path: Path) -> dict[str, float]:
    """Plot the training loss (the committed copy of the run's metrics.csv) and return its endpoints."""
    import matplotlib.pyplot as plt

    rows = np.genfromtxt(metrics_csv, delimiter=",", names=True)
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.plot(rows["step"], rows["loss"], lw=0.6, color="0.6", label="logged batch loss")
    window = min(10, len(rows))
    ax.plot(rows["step"][window - 1:], np.convolve(rows["loss"], np.ones(window) / window, "valid"), label="mean of 10")
    ax.set_xlabel("step")
    ax.set_ylabel("EDM loss")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return {"first_logged": float(rows["loss"][:window].mean()), "last_logged": float(rows["loss"][-window:].mean()),
            "seconds_per_step": float(np.median(rows["sec_per_step"])), "last_step": int(rows["step"][-1])}


def over_styles(summary: dict) -> dict[str, float]:
    """The figures over all styles the README, the model card and the project README (benchmarks/figures.py) show:
    cave share against the corpus's as served and as drawn, the caves' elongation likewise and the corpus's."""
    return {"grown": cave_ratio(summary, "cave_share"), "as_drawn": cave_ratio(summary, "cave_share_as_drawn"),
            "elongation": style_mean(summary, "elongation"),
            "elongation_as_drawn": style_mean(summary, "elongation_as_drawn", like="elongation"),
            "corpus_elongation": style_mean(summary, "elongation", corpus=True)}


def cave_ratio(summary: dict, measure: str) -> float:
    """Generated over corpus cave share, geometric mean over the styles where the corpus has caves."""
    ratios = [v[measure] / v["corpus"]["cave_share"] for v in summary["per_style"].values()
              if v["corpus"].get("cave_share", 0) > 0 and v[measure] > 0]
    return float(np.exp(np.mean(np.log(ratios)))) if ratios else float("nan")


def style_mean(summary: dict, measure: str, corpus: bool = False, like: str = "") -> float:
    """A measure's mean over the styles where both the model's chunks and the corpus's have it (the corpus's
    ``like`` measure: by default the same)."""
    found = [(v[measure], v["corpus"].get(like or measure, float("nan"))) for v in summary["per_style"].values()]
    found = [c if corpus else m for m, c in found if not (np.isnan(m) or np.isnan(c))]
    return float(np.mean(found)) if found else float("nan")


def write_model_card(meta: dict, summary: dict, curve: dict, path: Path) -> None:
    run = meta.get("run", {})
    train = run.get("train_config", {})
    ref = summary["per_refinement"]
    start = meta.get("fine_tuned_from", {})
    lineage = (f"Made in two legs: {start['revision']}, then {run.get('steps_done')} more steps from its weights "
               f"(`init_from`, the learning rate warmed up again)." if start else f"{run.get('steps_done')} steps.")
    text = MODEL_CARD.format(
        params=run.get("parameters"), batch=run.get("batch_size"), lr=train.get("lr"), ema=train.get("ema_decay"),
        hardware=run.get("hardware"), lineage=lineage, logged=curve["last_step"], regions=meta.get("corpus_regions"),
        styles=", ".join(meta["style_names"]), first=curve["first_logged"], last=curve["last_logged"],
        sps=curve["seconds_per_step"], chunk_s=ref["anneal"]["median_seconds"],
        refine=100 * ref["anneal"]["refine_share_of_time"], floating=100 * ref["anneal"]["chunks_with_floating_after"],
        **summary["over_styles"])
    path.write_text(text)


MODEL_CARD = """# voxel_chunks.safetensors: caves, overhangs and arches of 32³ voxel chunks

**What it does.** Draws the features of one 32³ chunk of 2 m voxels under a heightfield: the change of
truncated density from the featureless terrain, a fluid channel (water / lava) and an ore channel
(`backend/voxels/channels.py`), continuous EDM diffusion on the shared U-Net at dims=3, the cells folded
2³ into 24 channels. Conditioned on the terrain's truncated density (spatial), the known cells (neighbour
slabs for outpainting, locked cells for inpainting: mask and values), the style (one-hot, 10 % dropout)
and two sliders (cave density, overhang amount; 20 % dropout). Served by
`backend/generators/voxel_chunks.py` (`generate_chunk`), which grows the caves it drew through the cells
around them where it hedged (`channels.grown_caves`), joins them by passages through the deep rock
(`passages.joined_caves`) and adds the plausibility refinement.

**Data.** `python -m backend.data.voxel_corpus` on the 2D corpus's train maps ({styles}): {regions}
regions of 2 x 3 x 3 chunks, the maps shrunk to 8 m cells with heights scaled alike, features simulated by
`backend/voxels/features.py` (worm tunnels, caverns with pools, aquifers, karst along strata, leaning
overhangs and undercut cliffs, arches, ores, rare lava) and cleaned to zero plausibility energy. Training
items are 40³ windows (a chunk and 4 cells of context) at random places in 8 horizontal orientations.

**Training.** `python -m backend.training.train_voxels configs/voxel_chunks.json`: {params} parameters,
batch {batch}, AdamW {lr:g}, EMA {ema:g}, on {hardware} (median {sps:.2f} s per step). {lineage}
Loss (feature-weighted, not comparable with a plain loss; mean of the first / last 10 logged
steps) {first:.3f} -> {last:.3f} over {logged} steps; the log is
`reports/voxels/training_log.csv`, the curve `reports/voxels/training_loss.png`.

**Figures** (`reports/voxels/README.md`): interactive chunk {chunk_s:.2f} s median with refinement
(refinement {refine:.0f} % of it), chunks with floating pieces after refinement {floating:.1f} %; cave share
against the corpus's, geometric mean over the styles, {grown:.2f} as served, {as_drawn:.2f} as drawn;
the caves' elongation (tunnels or pockets), mean over the styles, {elongation:.2f} as served, {elongation_as_drawn:.2f}
as drawn (the corpus's {corpus_elongation:.2f}).

**Limits.** Trained at 2 m voxels only (other sizes run but are out of its distribution); one chunk level
of context; a world's memory reaches its chunks only through the opt-in voxel memory models (an adapter that reads
it, which alone carries little of the committed chunks into what it draws, and a slider readout: `voxel_memory.md`,
`reports/voxel_memory/`); the layered materials follow a rule, not the model. It draws its caves as pockets, not
tunnels (the elongation as drawn above; issue 22): denoising a corpus window with worm tunnels once at sigma 0.2 to
2 (sigma_data 0.13) it restores the tunnels, and at 2 it adds round blobs where there were none, so it knows a
tunnel from evidence and places caves as blobs from noise; the layout is decided above sigma 2, where its training
(log-normal, P_mean -1.2) puts about 6 % of its samples. Fine-tuned 600 steps at P_mean 1.0 / 1.5 its caves (grown,
not joined by passages) grew longer (elongation 2.70 / 2.88 on `reports/measure_cave_shape.py`'s 28 held-out chunks,
this model 1.93) and three to four times as many (cave share 0.044 / 0.059, the corpus's 0.014); with a wide
log-normal (P_mean 0.2, P_std 1.8) 2.75 / 0.035, and so with the plain loss 2.30 / 0.0073, with feature weight 2
2.85 / 0.022 (this model 0.012): rendered, these are bigger, merged blobs, not tunnels; not shipped. Served chunks
join the pockets by passages (`backend/voxels/passages.py`). Its loss weighs cells within 2 of a change beyond the
decode's dead zone 6 times (`feature_weight` 5
in the config, `train_voxels.FeatureWeight`): under the plain mean the haze of hedged change around its caves cost
little. That made it draw about three times the cave volume of the model before it (so its caves grow through only
the stronger haze, `channels.CAVE_REACH` 0.7 instead of 0.3) and slightly longer caves, not tunnels. Measured by
`reports/measure_cave_shape.py` on 28 held-out chunks, decoded with reach 0.3 (cave share, elongation; the
corpus's surface chunks 0.0144, 3.75; the model before it 0.0085, 1.85), fine-tuned from the model before it for
300 steps: unchanged settings 0.0037, 1.67; feature weight 5 0.0159, 2.06; 10 0.0233, 2.18; P_mean -0.4 or 0
instead of -1.2 (more training at the noise levels that decide where caves go) 0.0054, 1.73 and 0.0060, 1.69, with
weight 5 0.0261, 2.10; 1000 steps with weight 5 (this model) 0.0246, 2.15, with weight 10 0.0312, 2.25; weight 5
from scratch for 1000 steps 0.0223, 1.87; decoded with reach 0.7, this model 0.0115, 1.93 (with weight 10 at
reach 0.9 0.0115, 2.16, but on a gentle synthetic slope, tests/test_voxel_chunks.py, it lost the
overhangs). The model before it (the plain loss) drew no more caves when trained longer or wider (measured once
in a GPU lease on 2026-12-04, mean cave share of annealed chunks at this report's places, 2 a style: 1000 steps
of batch 8 0.0028; continued on an H200 for 1750 steps of batch 64 0.0027; a wider network of 753,592
parameters after 1750 and 3250 steps 0.0036 and 0.0033; sampled with 4, 16 or 48 steps,
unrefined, 0.0036, 0.0043, 0.0041; the wider one was not shipped: on a gentle synthetic slope,
tests/test_voxel_chunks.py, it drew no overhangs), so the shape is a limit of the network or the representation.
"""


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=str(ROOT / "models" / "voxel_chunks.safetensors"))
    ap.add_argument("--corpus", nargs="+", default=[str(ROOT / "corpus" / v) for v in ("v2a", "v2b", "v2c")])
    ap.add_argument("--voxel-corpus", default=str(ROOT / "corpus" / "voxels"))
    ap.add_argument("--positions", type=int, default=4, help="chunk places per style")
    ap.add_argument("--seeds", type=int, default=2, help="world seeds per place")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--run-log", default=str(ROOT / "runs" / "voxel_chunks" / "metrics.csv"),
                    help="the training run's metrics.csv (copied to reports/voxels/training_log.csv)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    OUT.mkdir(parents=True, exist_ok=True)
    model = VoxelModel.load(args.model)
    maps = load_maps(args.corpus, "heldout")
    rng = np.random.default_rng(0)
    results = {}
    for s, style in enumerate(maps.style_names):
        if style not in model.meta["style_names"] or not (maps.style == s).any():
            continue
        shrunk = [h * (MAP_CELL_M / maps.cell_size) for h in maps.heights[maps.style == s]]
        results[style] = run_style(model, style, shrunk, args.positions, args.seeds, rng)
        print(f"{style}: {len(results[style]['rows'])} chunks", flush=True)
    regions = load_regions(Path(args.voxel_corpus))
    summary = summarise(results, corpus_reference(regions))
    summary["slider_response"] = slider_response(model, [r["places"][0] for r in results.values()])
    summary["corpus_slider_response"] = corpus_slider_response(regions)
    summary["over_styles"] = over_styles(summary)
    render_slices({s: r["examples"][0] for s, r in results.items()}, OUT / "slices.png")
    cave_style = max(summary["per_style"], key=lambda s: summary["per_style"][s]["cave_share"])
    req = results[cave_style]["examples"][0][0]
    render = render_caves(model, req.heights, req.key, cave_style, Path(args.voxel_corpus), OUT / "cave_system.png")
    settings = {"positions": args.positions, "seeds": args.seeds, "threads": args.threads}
    (OUT / "results.json").write_text(json.dumps({"settings": settings, **summary, "render": render}, indent=1))
    write_readme(summary, model.meta, render, settings)
    log = committed_log(args.run_log, OUT)
    if log is not None:
        write_model_card(model.meta, summary, training_curve(log, OUT / "training_loss.png"),
                         Path(args.model).with_suffix(".md"))
    print(f"wrote {OUT / 'README.md'}")


if __name__ == "__main__":
    main()
