"""Regenerate reports/world_memory/ and models/terrain_memory.md: what the world memory buys.

    python reports/make_memory_report.py [--tiles 100] [--jobs 3]

Three ways to make a world, compared on the same seed and settings:

* ``shipped base``: the shipped base model, no memory (what worlds did before);
* ``null memory``: the memory model reading the memory-dropout null (the same weights without memory);
* ``memory``: the memory model reading the world's memory.

1. A walk of --tiles tiles east from (0, 0), each tile generated and then committed by the artist
   (``TileWorld.commit``: logged, written to the memory, kept as inpainting context for the next tile),
   the autoregressive chain where drift builds up. Measured along the walk: the tiles' mean elevation and
   relief (level drift), the gradient across tile borders against inside tiles (seam ratio, 1 = no
   seam), the share of samples outside the world's height range, the style classifier's verdict and
   distance to the requested style, and the realism metric families against held-out corpus maps (whole
   maps, what the base model learned), per quarter of the walk, and against tiles cut from held-out large
   maps (the kind of terrain a world of tiles is).
2. An artist's plateau: tile (0, 0) raised by a third of the world's relief (logged as a brush edit), then
   tiles 1..--reach east generated later (not committed): how much of the raise each continues, against
   the same world without the edit, and again after the artist has committed tiles in max_regions other
   regions (the plateau's region bank folded into the world level).

The worlds sample the base level only (tiles of 64 base cells at 120 m): memory acts in the base stage,
and super-resolution would add the same detail to every condition at 16x the cost on this CPU. The
style classifier is refitted here on corpus maps at that level (the shipped one is fitted at 30 m).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # allow `python reports/make_memory_report.py` from anywhere
    sys.path.insert(0, str(ROOT))

from backend.data.datasets import MapSet, load_maps  # noqa: E402
from backend.data.walks import WalkDataset  # noqa: E402
from backend.diffusion.preconditioning import Conditioning  # noqa: E402
from backend.grids import downsample  # noqa: E402
from backend.memory.loss import walk_memory  # noqa: E402
from backend.metrics.realism import FAMILIES, hillshade, hypsometry_features, set_distance, terrain_features  # noqa: E402
from backend.metrics.style_classifier import StyleClassifier, feature_vector  # noqa: E402
from backend.models.inference import file_sha256, read_metadata  # noqa: E402
from backend.models.shipped import BASE_FILE, MEMORY_FILE, MODELS_DIR, SUPERRES_FILE  # noqa: E402
from backend.models.terrain import TerrainModel  # noqa: E402
from backend.terrain import Heightfield  # noqa: E402
from backend.world.store import TileMeta  # noqa: E402
from backend.world.tiles import TileWorld, WorldSettings, create_world, edge_step_ratio, seam_ratio, stitch  # noqa: E402

OUT = ROOT / "reports" / "world_memory"
CONDITIONS = ("shipped base", "null memory", "memory")
STYLE, HEIGHT_M, SEED = "alpine", 1500.0, 2024
SETTINGS = WorldSettings({STYLE: 1.0}, height_m=HEIGHT_M)  # the interactive quality, as an artist gets it
BASE_STEPS = SETTINGS.stages(1)[0].steps
PLATEAU = 1 / 3  # of the world's relief
SAMPLING_CODE = ("world", "memory", "diffusion", "networks", "generators")  # backend folders a walk runs through


def open_world(root: Path, condition: str, models_dir: Path) -> TileWorld:
    """A fresh base-level world of `condition` in `root`."""
    torch.set_num_threads(1)
    base, superres = (TerrainModel.load(models_dir / f) for f in (BASE_FILE, SUPERRES_FILE))
    memory = None if condition == "shipped base" else TerrainModel.load(models_dir / MEMORY_FILE)
    create_world(root, SEED, SETTINGS, base, superres, levels=1, memory=memory)
    return TileWorld(root, base, superres, memory=memory, read_memory=condition == "memory")


def walk(condition: str, models_dir: Path, tiles: int) -> dict[str, Any]:
    """The committed walk east: tile heights [tiles, n + 1, n + 1] and seconds per tile."""
    with tempfile.TemporaryDirectory() as tmp:
        world = open_world(Path(tmp) / "w", condition, models_dir)
        out, t0 = [], time.perf_counter()
        for i in range(tiles):
            out.append(world.tile((i, 0)))
            world.commit((i, 0))
        memory = None if world.memory is None else {"writes": world.memory.writes, "banks": len(world.memory.regions),
                                                   "bytes": world.memory.nbytes()}
        return {"heights": np.stack(out), "seconds_per_tile": (time.perf_counter() - t0) / tiles, "memory": memory}


def plateau_edit(world: TileWorld) -> None:
    """Raise tile (0, 0) by PLATEAU of the relief, ramping up over its western quarter (a logged brush edit)."""
    h = world.tile((0, 0))
    n = h.shape[0]
    ramp = np.clip(np.arange(n) / (n / 4), 0, 1)
    ramp = (3 * ramp ** 2 - 2 * ramp ** 3)[None, :].repeat(n, 0)
    after = (h + PLATEAU * HEIGHT_M * ramp).astype(np.float32)
    world.store.append_edit("raise", (0, 0), (0, 0, n, n), {"report": "plateau"}, {"before": h, "after": after})
    world.store.put_tile((0, 0), Heightfield(after, world.store.cell_size), TileMeta("edited", "report"))
    world.cache.clear()


def plateau(condition: str, models_dir: Path, reach: int) -> dict[str, Any]:
    """Tiles 0..reach east with and without the plateau, and (memory worlds) after commits elsewhere."""
    with tempfile.TemporaryDirectory() as tmp:
        plain = open_world(Path(tmp) / "plain", condition, models_dir)
        edited = open_world(Path(tmp) / "edited", condition, models_dir)
        plateau_edit(edited)
        row = range(reach + 1)
        out = {"plain": np.stack([plain.tile((d, 0)) for d in row]),
               "edited": np.stack([edited.tile((d, 0)) for d in row])}
        if edited.memory is not None and edited.read_memory:  # the artist works in max_regions other regions
            later = open_world(Path(tmp) / "later", condition, models_dir)
            plateau_edit(later)
            step = later.memory.cfg.region_tiles
            for k in range(later.memory.cfg.max_regions):
                later.commit((step * k, 20 + step * k))
            out["after_elsewhere"] = np.stack([later.tile((d, 0)) for d in row])
            out["banks_after"] = [list(k) for k in sorted(later.memory.regions)]
        return out


def task_key(kind: str, condition: str, models_dir: Path, size: int) -> str:
    """What a task's result depends on: its settings, the bytes of the models it samples with and the code
    it samples through (a change to world sampling invalidates cached walks as a change of weights does)."""
    files = [BASE_FILE] if condition == "shipped base" else [BASE_FILE, MEMORY_FILE]
    digest = hashlib.sha256(json.dumps([kind, condition, size, STYLE, HEIGHT_M, SEED, PLATEAU, BASE_STEPS]).encode())
    for f in files:
        digest.update(bytes.fromhex(file_sha256(models_dir / f)))
    for source in sorted(p for part in SAMPLING_CODE for p in (ROOT / "backend" / part).glob("*.py")):
        digest.update(source.read_bytes())
    return f"{kind}-{condition.replace(' ', '_')}-{digest.hexdigest()[:16]}"


def run_task(task: tuple[str, str, Path, int, Path | None]) -> tuple[str, str, dict[str, Any]]:
    """One walk or plateau run; with a cache folder, a result computed before from the same models is reused
    (the walks take hours on a shared 2-core CPU, and the shipped-base ones need no memory model)."""
    kind, condition, models_dir, size, cache = task
    path = None if cache is None else cache / task_key(kind, condition, models_dir, size)
    if path is not None and path.with_suffix(".json").is_file():
        with np.load(path.with_suffix(".npz"), allow_pickle=False) as z:
            arrays = dict(z)
        return kind, condition, {**json.loads(path.with_suffix(".json").read_text()), **arrays}
    result = walk(condition, models_dir, size) if kind == "walk" else plateau(condition, models_dir, size)
    if path is not None:
        cache.mkdir(parents=True, exist_ok=True)
        arrays = {k: v for k, v in result.items() if isinstance(v, np.ndarray)}
        np.savez(path.with_suffix(".npz"), **arrays)
        path.with_suffix(".json").write_text(json.dumps({k: v for k, v in result.items() if k not in arrays}))
    print(f"done: {kind} / {condition}", flush=True)
    return kind, condition, result


def memory_corpus(models_dir: Path, split: str) -> MapSet:
    """The large simulated maps of the memory model's corpus (``split``: "train" or "heldout")."""
    return load_maps([str(ROOT / c) for c in read_metadata(models_dir / MEMORY_FILE)["config"]["run"]["corpus"]], split)


def heldout_denoising(models_dir: Path, maps: MapSet, sigmas: tuple[float, ...], items: int = 96) -> dict[str, Any]:
    """Denoising error on walks over held-out large maps (the memory corpus's heldout split): each target window
    denoised from fixed noise at each sigma by the memory model with the memory its walk wrote (context written
    at the serving noise level), by the same model with the null memory, and by the shipped base model."""
    torch.set_num_threads(1)
    base, memory = (TerrainModel.load(models_dir / f) for f in (BASE_FILE, MEMORY_FILE))
    model, run = memory.denoiser, memory.meta["run"]
    cfg = model.network.config
    walks = WalkDataset(maps, round(memory.meta["cell_size_m"] / maps.cell_size), cfg.tile_cells, cfg.region_tiles,
                        run["max_context"], walks_per_map=16, fold_probability=0.0, seed=99,
                        level_std=run.get("level_std"))
    chosen = [walks[int(i)] for i in np.linspace(0, len(walks) - 1, items).round()]
    x = torch.stack([c[0] for c in chosen])
    cond = Conditioning.cat([c[1].map(lambda t: t[None]) for c in chosen])
    extras = {k: torch.stack([c[2][k] for c in chosen]) for k in chosen[0][2]}
    g = torch.Generator().manual_seed(5)
    context = extras["context"]
    sigma_write = torch.full(context.shape[:2], cfg.write_sigma)
    noised = context + cfg.write_sigma * torch.randn(context.shape, generator=g)
    with torch.no_grad():
        tokens = model.network.encode(noised.flatten(0, 1), sigma_write.flatten()).unflatten(0, context.shape[:2])
        read = walk_memory(model.network, tokens, extras)
        out: dict[str, Any] = {"items": items, "maps": len(maps), "by_sigma": {}}
        for sigma in sigmas:
            y = x + sigma * torch.randn(x.shape, generator=g)
            errors = {"memory": model(y, sigma, cond.replace(memory=read)),
                      "null memory": model(y, sigma, cond.replace(memory=torch.zeros_like(read))),
                      "shipped base": base.denoiser(y, sigma, cond)}
            out["by_sigma"][sigma] = {k: float(((d - x) ** 2).mean()) for k, d in errors.items()}
    with_context = extras["ctx_valid"].sum(1) > 0
    out["walks_with_context"] = int(with_context.sum())
    return out


# --- metrics ------------------------------------------------------------------------------------------
def base_level_maps(corpus: list[str], split: str, factor: int) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    maps = load_maps(corpus, split)
    return downsample(torch.from_numpy(maps.heights), factor).numpy(), maps.style, maps.style_names


def features(tiles: np.ndarray | list[np.ndarray], cell: float) -> list[dict]:
    """The realism metric features of each tile (heights in metres, `cell` metres per cell)."""
    return [terrain_features(Heightfield(t, cell)) for t in tiles]


def realism_cells(distance: dict[str, float]) -> str:
    """One realism distance as markdown table cells: each family, then the total."""
    return " | ".join(fmt(distance[f]) for f in FAMILIES) + f" | {fmt(distance['total'])}"


def walk_metrics(heights: np.ndarray, cell: float, classifier: StyleClassifier,
                 reference: list[dict], world_reference: list[dict]) -> dict[str, Any]:
    n = heights.shape[1] - 1
    strip = stitch({(i, 0): h for i, h in enumerate(heights)}, range(len(heights)), range(1))
    feats = features(heights, cell)
    vectors = np.stack([feature_vector(Heightfield(h, cell)) for h in heights])
    style_index = classifier.styles.index(STYLE)
    quarters = np.array_split(np.arange(len(heights)), 4)
    return {
        "level": heights.mean(axis=(1, 2)), "relief": np.ptp(heights, axis=(1, 2)),
        "outside": ((heights < 0) | (heights > HEIGHT_M)).mean(axis=(1, 2)),
        "seam": seam_ratio(strip, n), "style_distance": classifier.distances(vectors)[:, style_index],
        "predicted": classifier.predict(vectors),
        "realism": [set_distance([feats[i] for i in q], reference) for q in quarters], "quarters": quarters,
        "realism_world": set_distance(feats, world_reference),
    }


def hypsometry(tiles: np.ndarray | list[np.ndarray]) -> tuple[float, float]:
    """Mean hypsometric integral and elevation skewness of tiles (each normalised to [0, 1], as realism does)."""
    found = [hypsometry_features(np.asarray(t)) for t in tiles]
    return float(np.mean([f["integral"] for f in found])), float(np.mean([f["skewness"] for f in found]))


def large_map_tiles(maps: MapSet, cell: float, n: int) -> list[np.ndarray]:
    """The n-cell tiles (at `cell` metres) of the large maps of STYLE: the kind of terrain a world of tiles is, and
    the kind the memory learns from."""
    factor = round(cell / maps.cell_size)
    large = downsample(torch.from_numpy(maps.heights[maps.style == maps.style_names.index(STYLE)]), factor).numpy()
    size = large.shape[-1]
    return [m[r:r + n, c:c + n] for m in large for r in range(0, size - n + 1, n) for c in range(0, size - n + 1, n)]


# --- pictures -----------------------------------------------------------------------------------------
def tinted(h: np.ndarray, cell: float, low: float, high: float) -> np.ndarray:
    """Hillshaded heights on a fixed elevation scale (so a drifting level shows as a colour change)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tint = plt.get_cmap("gist_earth")(0.15 + 0.8 * np.clip((h - low) / (high - low), 0, 1))[..., :3]
    return np.clip(tint * (0.35 + 0.75 * hillshade(h, cell)[..., None]), 0, 1)


def walk_picture(walks: dict[str, np.ndarray], cell: float, path: Path, per_row: int = 25) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(walks), 1, figsize=(16, 2.9 * len(walks)), squeeze=False)
    for ax, (name, heights) in zip(axes[:, 0], walks.items()):
        rows = [stitch({(i, 0): h for i, h in enumerate(heights[k:k + per_row])}, range(len(heights[k:k + per_row])),
                       range(1)) for k in range(0, len(heights), per_row)]
        width = max(r.shape[1] for r in rows)
        canvas = np.concatenate([np.pad(tinted(r, cell, 0, HEIGHT_M), ((0, 4), (0, width - r.shape[1]), (0, 0)),
                                        constant_values=1) for r in rows])
        ax.imshow(canvas, interpolation="bilinear")
        ax.set_title(f"{name}: tiles 0-{len(heights) - 1} east, {per_row} per row (colour: 0-{HEIGHT_M:.0f} m fixed)",
                     fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def profile_picture(metrics: dict[str, dict[str, Any]], path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    for name, m in metrics.items():
        x = np.arange(len(m["level"]))
        axes[0].plot(x, m["level"], label=name)
        axes[1].plot(x, m["relief"], label=name)
        axes[2].plot(x, m["style_distance"], label=name)
    for ax, title in zip(axes, ("tile mean elevation (m)", "tile relief (m)", f"distance to the {STYLE} centroid")):
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("tile along the walk")
    axes[0].axhspan(0, HEIGHT_M, color="0.9", zorder=0)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def plateau_picture(results: dict[str, dict[str, Any]], cell: float, path: Path) -> None:
    import matplotlib.pyplot as plt

    rows = [(f"{name}: {key}", r[key]) for name, r in results.items()
            for key in ("plain", "edited", "after_elsewhere") if key in r]
    fig, axes = plt.subplots(len(rows), 1, figsize=(12, 1.9 * len(rows)), squeeze=False)
    high = HEIGHT_M * (1 + PLATEAU)
    for ax, (title, tiles) in zip(axes[:, 0], rows):
        strip = stitch({(i, 0): h for i, h in enumerate(tiles)}, range(len(tiles)), range(1))
        ax.imshow(tinted(strip, cell, 0, high), interpolation="bilinear")
        ax.set_title(f"{title} (tiles 0-{len(tiles) - 1} east; colour 0-{high:.0f} m)", fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def plateau_profile(results: dict[str, dict[str, Any]], cell: float, path: Path) -> None:
    """Share of the raise kept per column east of the edit (0 = the plain world, 1 = the whole raise)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 3.6))
    for name, r in results.items():
        for key, style in (("edited", "-"), ("after_elsewhere", ":")):
            if key in r:
                kept = stitch({(i, 0): h for i, h in enumerate(r[key] - r["plain"])}, range(len(r["plain"])),
                              range(1)).mean(axis=0) / (PLATEAU * HEIGHT_M)
                km = np.arange(len(kept)) * cell / 1000
                ax.plot(km, kept, style, label=name + ("" if key == "edited" else ", after commits elsewhere"))
    n = results[CONDITIONS[0]]["plain"].shape[1] - 1
    ax.axvline(n * cell / 1000, color="0.5", lw=0.8)
    ax.axhline(0, color="0.5", lw=0.8)
    ax.set_xlabel("km east of the edited tile's west edge (grey: its east edge)")
    ax.set_ylabel("share of the raise kept")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


# --- the report ---------------------------------------------------------------------------------------
def fmt(x: float, digits: int = 3) -> str:
    return f"{x:.{digits}f}"


def border_step(tiles: np.ndarray) -> float:
    """The step from tile 0 into tile 1 of a row of tiles [k, n + 1, n + 1] over the row's mean step."""
    row = stitch({(d, 0): t for d, t in enumerate(tiles)}, range(len(tiles)), range(1))
    return edge_step_ratio(row, tiles.shape[2] - 1)


def reading(drift: dict[str, float], kept: dict[str, np.ndarray], walls: dict[str, float],
            denoising: dict[str, Any], metrics: dict[str, dict[str, Any]], realism: dict[str, float],
            hyps: dict[str, tuple[float, float]], world_floor: float) -> str:
    """What the numbers say, in words that follow the numbers (so a rerun cannot contradict its own text)."""
    gain = 1 - np.mean([e["memory"] / e["null memory"] for e in denoising["by_sigma"].values()])
    over_base = 1 - np.mean([e["memory"] / e["shipped base"] for e in denoising["by_sigma"].values()])
    out = [f"on held-out walks the memory makes the next window {gain:.0%} easier to denoise than the same weights "
           f"without it, and {abs(over_base):.0%} {'easier' if over_base >= 0 else 'harder'} than the shipped base "
           "(the information is there)."]
    if max(abs(d) for d in drift.values()) < 0.05 * HEIGHT_M:
        out.append("The committed walk does not drift in any condition (inpainting of the committed neighbour keeps "
                   "the level; the base-level chain is stable over 100 tiles), so there is no drift for memory to cure "
                   "here;")
    level_std = {c: float(m["level"].std()) for c, m in metrics.items()}
    less = level_std["memory"] < level_std["null memory"]
    out.append(f"with memory the tile-to-tile level varies {'less' if less else 'more'} "
               f"({level_std['memory']:.0f} m vs {level_std['null memory']:.0f} m without).")
    style = {c: float(m["style_distance"].mean()) for c, m in metrics.items()}
    family = {c: {f: float(np.mean([d[f] for d in m["realism"]])) for f in FAMILIES} for c, m in metrics.items()}
    worst = max(FAMILIES, key=lambda f: family["memory"][f] - family["null memory"][f])
    out.append(f"Along the walk the memory {'shortens' if style['memory'] < style['null memory'] else 'lengthens'} the "
               f"distance to the {STYLE} centroid ({style['memory']:.2f} vs {style['null memory']:.2f}) and its realism "
               f"distance is {realism['memory']:.3f} vs {realism['null memory']:.3f} without (the family that changes most "
               f"for the worse: {worst}); {metrics['memory']['outside'].mean():.1%} of its cells fall outside the world's "
               f"0-{HEIGHT_M:.0f} m, {metrics['null memory']['outside'].mean():.1%} without.")
    first = {c: float(k[0]) for c, k in kept.items()}
    if all(k < 0.05 for k in first.values()):
        out.append("No condition continues the artist's plateau: the neighbour drops back to the plain world within "
                   "about a kilometre, with memory as without.")
    else:
        out.append(f"Tiles generated after the artist's plateau continue it (tile 1 keeps {min(first.values()):.0%}-"
                   f"{max(first.values()):.0%} of the raise, the step into it {min(walls.values()):.2f}-"
                   f"{max(walls.values()):.2f} times the mean step): inpainting leans the new tile into the edit")
        out[-1] += (" in every condition; memory changes this by less than 5 points." if
                    abs(first["memory"] - first["null memory"]) < 0.05 else
                    f"; memory keeps {first['memory']:.0%} against {first['null memory']:.0%} without.")
    closer = abs(hyps["memory"][0] - hyps["large"][0]) < abs(hyps["memory"][0] - hyps["reference"][0])
    out.append(f"Hypsometric integral of the tiles: memory {hyps['memory'][0]:.2f}, null memory "
               f"{hyps['null memory'][0]:.2f}; tiles of held-out large maps {hyps['large'][0]:.2f}, the whole maps "
               f"realism compares with {hyps['reference'][0]:.2f} (table below): the memory's tiles are "
               + ("closer to tiles of large maps, the data it learned from." if closer else "closer to whole maps."))
    world = {c: m["realism_world"] for c, m in metrics.items()}
    gap = world["memory"]["total"] - world["null memory"]["total"]
    better = [f for f in FAMILIES if world["memory"][f] < world["null memory"][f] - 0.1]
    worse = [f for f in FAMILIES if world["memory"][f] > world["null memory"][f] + 0.1]
    out.append(f"Against tiles of large maps (the kind of terrain a world is) the memory's realism distance is "
               f"{world['memory']['total']:.3f} vs {world['null memory']['total']:.3f} without, "
               + ("a tie within the noise floor" if abs(gap) < world_floor else ("closer" if gap < 0 else "farther"))
               + f" ({world_floor:.3f}); memory is closer in {', '.join(better) or 'no family'} and farther in "
               f"{', '.join(worse) or 'no family'} (by more than 0.1).")
    return " ".join(out)


def base_mismatch(models_dir: Path) -> str:
    """A warning when the memory model was fine-tuned from other base weights than the shipped ones."""
    started = read_metadata(models_dir / MEMORY_FILE)["config"]["init_from"]["sha256"]
    shipped = file_sha256(models_dir / BASE_FILE)
    if started == shipped:
        return ""
    return (f" **The memory model was fine-tuned from earlier base weights** (sha256 {started[:12]}...) than the "
            f"shipped base ({shipped[:12]}...): 'shipped base' differs from the other two conditions by its network "
            "as well, so what memory buys is memory against null memory (the same weights).")


def model_card(models_dir: Path, metrics_lines: list[str]) -> None:
    meta = read_metadata(models_dir / MEMORY_FILE)
    cfg, run = meta["config"], meta["config"]["run"]
    lines = ["# Memory-conditioned base model", "",
             f"File: `{MEMORY_FILE}` (safetensors, EMA weights, config in the metadata).", "",
             "| | |", "|---|---|",
             "| kind | base model (64² windows at 120 m) with cross-attention to memory tokens, and the memory network |",
             f"| parameters | {run['parameters']:,} (U-Net + memory encoder, gated writer, baselines, read embeddings) |",
             f"| memory | {json.dumps(cfg['memory'])} |",
             f"| started from | `{cfg['init_from']['file']}` sha256 {cfg['init_from']['sha256'][:16]}... "
             "(all weights but the new cross-attention; its output projections start at zero) |",
             f"| trained | {run['trained_parameters']:,} parameters (memory + cross-attention); the base U-Net "
             f"{'frozen' if run['freeze_base'] else 'fine-tuned too'} |",
             f"| data | corpus {', '.join(run['corpus'])}: {run['train_maps']} large simulated maps (256² at 120 m, "
             f"4 x 4 tiles), {run['train_items']:,} walks of up to {run['max_context']} tiles; "
             + (f"tile levels flattened to a std of {run['level_std']} units (backend/data/walks.py) |"
                if run.get("level_std") is not None else "tile levels as simulated |"),
             f"| training | {run['steps_done']} steps, batch {run['batch_size']}, config `{run['config_file']}`, "
             f"alignment weight {run['align_weight']} on {run['align_fraction']:.0%} of each batch |",
             f"| time | {run.get('train_seconds_total', float('nan')) / 60:.0f} min |",
             f"| hardware | {run['hardware']}, torch {run['torch']} |",
             f"| final loss (EDM + alignment, last 200 steps) | {run.get('final_loss_mean_last_200_steps', float('nan')):.4f} |",
             "", "Reproduce: `bash scripts/train_memory.sh`.", "",
             "## Measured (reports/world_memory/README.md)", "", *metrics_lines, ""]
    (models_dir / MEMORY_FILE).with_suffix(".md").write_text("\n".join(lines))


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiles", type=int, default=100, help="tiles in the walk")
    ap.add_argument("--reach", type=int, default=4, help="tiles east of the plateau generated later")
    ap.add_argument("--jobs", type=int, default=3, help="worker processes (one condition each)")
    ap.add_argument("--models-dir", type=Path, default=MODELS_DIR)
    ap.add_argument("--corpus", nargs="+", help="corpus with held-out maps (default: the base model's)")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--cache", type=Path, default=ROOT / "runs" / "memory_report",
                    help="reuse walk and plateau results computed before with the same models ('' = never)")
    ap.add_argument("--only", choices=CONDITIONS, nargs="+", help="compute (and cache) these conditions, no report")
    return ap.parse_args()


def run_conditions(args: argparse.Namespace) -> dict[str, dict[str, Any]] | None:
    """The walk and the plateau of every condition, one worker process each (reused from the cache); None
    with --only (the results are cached, no report)."""
    cache = args.cache if str(args.cache) else None
    tasks = [(kind, c, args.models_dir, args.tiles if kind == "walk" else args.reach, cache)
             for kind in ("walk", "plateau") for c in (args.only or CONDITIONS)]
    with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        done = pool.map(run_task, tasks, chunksize=1)
    if args.only:
        return None
    results: dict[str, dict[str, Any]] = {"walk": {}, "plateau": {}}
    for kind, condition, result in done:
        results[kind][condition] = result
    return results


@dataclass
class Measured:
    """What the report is written from: the runs, and the metrics and references measured on them."""

    args: argparse.Namespace  # the command line
    results: dict[str, dict[str, Any]]  # walk / plateau -> condition -> run_task's result
    cell: float
    t0: float  # when the run began (perf_counter)
    names: list[str]  # style names of the corpus
    held: np.ndarray  # held-out corpus maps at the base level
    held_accuracy: float
    floor: dict[str, float]  # realism noise floor against whole maps
    large_held: MapSet  # the memory corpus's held-out large maps
    denoising: dict[str, Any]
    walks: dict[str, np.ndarray]
    n: int  # cells per tile side
    world_tiles: np.ndarray  # tiles cut from held-out large maps
    world_floor: dict[str, float]
    whole_vs_world: dict[str, float]
    metrics: dict[str, dict[str, Any]]
    hyps: dict[str, tuple[float, float]]  # (hypsometric integral, skewness) per set


def measure(args: argparse.Namespace, results: dict[str, dict[str, Any]], corpus: list[str], factor: int,
            cell: float, t0: float) -> Measured:
    """The style classifier and realism references from the corpus, held-out denoising and the walks' metrics."""
    train, train_style, names = base_level_maps(corpus, "train", factor)
    held, held_style, _ = base_level_maps(corpus, "heldout", factor)
    per_style = 10
    fit = [i for s in range(len(names)) for i in np.flatnonzero(train_style == s)[:per_style]]
    classifier = StyleClassifier.fit(np.stack([feature_vector(Heightfield(train[i], cell)) for i in fit]),
                                     [names[train_style[i]] for i in fit])
    held_pred = classifier.predict(np.stack([feature_vector(Heightfield(h, cell)) for h in held]))
    held_accuracy = float(np.mean([p == names[s] for p, s in zip(held_pred, held_style)]))
    s = names.index(STYLE)
    reference = features(held[held_style == s], cell)
    floor = set_distance(features(train[np.flatnonzero(train_style == s)[:25]], cell), reference)

    large_held = memory_corpus(args.models_dir, "heldout")
    denoising = heldout_denoising(args.models_dir, large_held, (0.3, 1.0, 3.0, 10.0))
    walks = {c: results["walk"][c]["heights"] for c in CONDITIONS}
    n = walks["memory"].shape[1] - 1
    world_tiles = large_map_tiles(large_held, cell, n)
    world_reference = features(world_tiles, cell)
    world_floor = set_distance(features(large_map_tiles(memory_corpus(args.models_dir, "train"), cell, n), cell),
                               world_reference)
    whole_vs_world = set_distance(reference, world_reference)
    metrics = {c: walk_metrics(walks[c], cell, classifier, reference, world_reference) for c in CONDITIONS}
    hyps = {"reference": hypsometry(held[held_style == s]), "large": hypsometry(world_tiles),
            **{c: hypsometry(walks[c]) for c in CONDITIONS}}
    return Measured(args=args, results=results, cell=cell, t0=t0, names=names, held=held, held_accuracy=held_accuracy,
                    floor=floor, large_held=large_held, denoising=denoising, walks=walks, n=n, world_tiles=world_tiles,
                    world_floor=world_floor, whole_vs_world=whole_vs_world, metrics=metrics, hyps=hyps)


def draw_pictures(m: Measured) -> None:
    args, walks, cell, metrics, results = m.args, m.walks, m.cell, m.metrics, m.results
    walk_picture(walks, cell, args.out / "walk.png")
    profile_picture(metrics, args.out / "walk_profiles.png")
    plateau_picture(results["plateau"], cell, args.out / "plateau.png")
    plateau_profile(results["plateau"], cell, args.out / "plateau_profile.png")


def header_lines(m: Measured) -> list[str]:
    args, walks, cell, t0 = m.args, m.walks, m.cell, m.t0
    return ["# World memory: what it buys", "",
            "Regenerate: `python reports/make_memory_report.py` (needs the corpus of `scripts/train_models.sh` for "
            "held-out maps and `models/terrain_memory.safetensors` from `scripts/train_memory.sh`).", "",
            f"World: style {STYLE}, relief {HEIGHT_M:.0f} m, seed {SEED}, guidance 3, {BASE_STEPS} base sampler steps "
            "(DPM-Solver++, the interactive setting), base level only "
            f"(tiles of {walks['memory'].shape[1] - 1} cells at {cell:.0f} m). Conditions: **shipped base** = "
            "`terrain_base` without memory; **null memory** = `terrain_memory` reading the memory-dropout null; "
            "**memory** = `terrain_memory` reading the world's memory.",
            f"Machine: {platform.machine()}, torch threads 1 per process, {args.jobs} processes; "
            f"this run took {(time.perf_counter() - t0) / 60:.0f} min (walks and plateaus are reused from --cache "
            "while the models and the sampling code are unchanged; 's per tile' below is from the run that made them).", ""]


def summary_lines(m: Measured) -> list[str]:
    """The summary bullets and the reading of them (the model card repeats the first three)."""
    args, results, metrics, denoising, hyps, world_floor = m.args, m.results, m.metrics, m.denoising, m.hyps, m.world_floor
    train_run = read_metadata(args.models_dir / MEMORY_FILE)["config"]["run"]
    kept = {c: (r["edited"] - r["plain"]).mean(axis=(1, 2))[1:] / (PLATEAU * HEIGHT_M)
            for c, r in results["plateau"].items()}
    walls = {c: border_step(r["edited"]) for c, r in results["plateau"].items()}
    drift = {c: m["level"][m["quarters"][-1]].mean() - m["level"][m["quarters"][0]].mean() for c, m in metrics.items()}
    realism = {c: np.mean([d["total"] for d in m["realism"]]) for c, m in metrics.items()}
    realism_world = {c: m["realism_world"]["total"] for c, m in metrics.items()}
    share = {c: np.mean([p == STYLE for p in m["predicted"]]) for c, m in metrics.items()}
    summary = [
        f"- Denoising the next window of a held-out walk: memory / null-memory error "
        + ", ".join(f"{e['memory'] / e['null memory']:.2f} at sigma {sg:g}" for sg, e in denoising["by_sigma"].items())
        + " (below 1 = the memory carries information about the window); memory / shipped base "
        + ", ".join(f"{e['memory'] / e['shipped base']:.2f}" for e in denoising["by_sigma"].values()) + ".",
        f"- {args.tiles}-tile committed walk, level drift first to last quarter: "
        + ", ".join(f"{c} {drift[c]:+.0f} m" for c in CONDITIONS) + "; seam ratio "
        + ", ".join(f"{c} {metrics[c]['seam']:.2f}" for c in CONDITIONS) + "; realism distance (mean of quarters) "
        + ", ".join(f"{c} {realism[c]:.3f}" for c in CONDITIONS) + " against whole corpus maps, "
        + ", ".join(f"{c} {realism_world[c]:.3f}" for c in CONDITIONS) + " against tiles of large maps"
        + f"; tiles classified {STYLE} "
        + ", ".join(f"{c} {share[c]:.0%}" for c in CONDITIONS) + ".",
        f"- Plateau raised on tile 0, share of the raise kept by tiles generated later (tiles 1 / 2): "
        + ", ".join(f"{c} {kept[c][0]:.0%} / {kept[c][1]:.0%}" for c in CONDITIONS)
        + "; step from the plateau into tile 1 / mean step: " + ", ".join(f"{c} {walls[c]:.2f}" for c in CONDITIONS) + ".",
        "",
        "Reading: " + reading(drift, kept, walls, denoising, metrics, realism, hyps, world_floor["total"]),
        "",
        f"Limits of this measurement: the shipped memory model is a small adapter (cross-attention + memory, "
        f"the base frozen) trained for {train_run['steps_done']} steps of {train_run['batch_size']} walks "
        f"({train_run.get('train_seconds_total', 0) / 60:.0f} min on the 2-core CPU); one style, one seed, "
        f"the base level only, {BASE_STEPS} sampler steps. Inpainting of committed neighbours already pins the shared border "
        "and leans the new tile into it in every condition, so what memory can add is what lies beyond it: the "
        "level, relief and shape statistics of tiles further away (region and world banks) and of the 3 x 3 "
        "neighbourhood as tokens." + base_mismatch(args.models_dir),
        ""]
    return summary


def denoising_lines(m: Measured) -> list[str]:
    denoising = m.denoising
    lines: list[str] = []
    lines += ["## 0. Denoising the next window of a walk over held-out maps", "",
              f"{denoising['items']} walks over {denoising['maps']} held-out large maps of the memory corpus "
              f"({denoising['walks_with_context']} with at least one context tile); mean squared error of the x0 "
              "estimate in network units (heights in the tile frame of backend/data/walks.py), the same noise for every model.", "",
              "| sigma | memory | null memory | shipped base | memory / null | memory / shipped base |",
              "|---|---|---|---|---|---|"]
    for sigma, e in denoising["by_sigma"].items():
        lines.append(f"| {sigma:g} | {fmt(e['memory'], 4)} | {fmt(e['null memory'], 4)} | {fmt(e['shipped base'], 4)} | "
                     f"{e['memory'] / e['null memory']:.2f} | {e['memory'] / e['shipped base']:.2f} |")
    lines += [""]
    return lines


def walk_lines(m: Measured) -> list[str]:
    args, results, metrics, held_accuracy, held, names, floor, hyps, cell, whole_vs_world, world_floor, large_held, world_tiles, n = m.args, m.results, m.metrics, m.held_accuracy, m.held, m.names, m.floor, m.hyps, m.cell, m.whole_vs_world, m.world_floor, m.large_held, m.world_tiles, m.n
    lines: list[str] = []
    lines += [f"## 1. A {args.tiles}-tile walk east, every tile committed by the artist", "",
              "Each tile is generated, then committed: logged, written to the memory and kept as inpainting "
              "context, so tile i+1 continues tile i (the autoregressive chain where drift builds up).", "",
              "| condition | level first / last quarter (m) | level drift (m) | tile-level std (m) | relief first / last "
              "quarter (m) | outside 0-relief | seam ratio | s per tile |", "|---|---|---|---|---|---|---|---|"]
    for c in CONDITIONS:
        m, q = metrics[c], metrics[c]["quarters"]
        first, last = m["level"][q[0]].mean(), m["level"][q[-1]].mean()
        lines.append(f"| {c} | {first:.0f} / {last:.0f} | {last - first:+.0f} | {m['level'].std():.0f} | "
                     f"{m['relief'][q[0]].mean():.0f} / {m['relief'][q[-1]].mean():.0f} | {m['outside'].mean():.1%} | "
                     f"{fmt(m['seam'], 2)} | {results['walk'][c]['seconds_per_tile']:.1f} |")
    mem = results["walk"]["memory"]["memory"]
    lines += ["", f"Memory after the walk: {mem['writes']} writes, {mem['banks']} region banks, {mem['bytes']:,} bytes "
              f"of slots (bound {read_metadata(args.models_dir / MEMORY_FILE)['config']['memory']['max_regions']} banks).",
              "", "### Style along the walk (nearest-centroid classifier refitted at the base level)", "",
              f"Classifier accuracy on held-out base-level corpus maps: {held_accuracy:.2f} ({len(held)} maps, "
              f"chance {1 / len(names):.2f}).", "",
              "| condition | " + " | ".join(f"quarter {k + 1}: {STYLE} share / distance" for k in range(4))
              + " | predicted (tiles) |", "|---|" + "---|" * 5]
    for c in CONDITIONS:
        m = metrics[c]
        cells = [f"{np.mean([m['predicted'][i] == STYLE for i in q]):.2f} / {m['style_distance'][q].mean():.2f}"
                 for q in m["quarters"]]
        votes = {st: m["predicted"].count(st) for st in set(m["predicted"])}
        common = ", ".join(f"{st} {n}" for st, n in sorted(votes.items(), key=lambda kv: -kv[1])[:3])
        lines.append(f"| {c} | " + " | ".join(cells) + f" | {common} |")
    lines += ["", "### Realism per quarter (distance to held-out corpus maps of the style; lower = closer)", "",
              f"Noise floor (training maps vs held-out maps of {STYLE}): total {fmt(floor['total'])}.", "",
              "| condition | quarter | " + " | ".join(FAMILIES) + " | total |", "|---|---|" + "---|" * (len(FAMILIES) + 1)]
    for c in CONDITIONS:
        for k, d in enumerate(metrics[c]["realism"]):
            lines.append(f"| {c} | {k + 1} | {realism_cells(d)} |")
    rows = {f"held-out corpus maps of {STYLE} (the realism reference: whole {cell:.0f} m maps)": hyps["reference"],
            f"tiles of held-out large maps of {STYLE} (the memory's training kind)": hyps["large"],
            **{f"walk: {c}": hyps[c] for c in CONDITIONS}}
    lines += ["", "### Hypsometry of the tiles (each normalised to [0, 1])", "",
              "In these simulated corpora a tile cut from a large map holds more high ground than a whole map of the "
              "same size (the whole map has the lower integral and the longer tail of peaks): the memory learns the "
              "former, the realism reference above is the latter.", "",
              "| tiles | hypsometric integral | elevation skewness |", "|---|---|---|"]
    lines += [f"| {label} | {integral:.3f} | {skew:+.2f} |" for label, (integral, skew) in rows.items()]
    world_rows = {f"held-out corpus maps of {STYLE} (whole maps, the reference above)": whole_vs_world,
                  "tiles of training large maps (noise floor)": world_floor,
                  **{f"walk: {c}": metrics[c]["realism_world"] for c in CONDITIONS}}
    held_large = int(np.sum(large_held.style == large_held.style_names.index(STYLE)))
    lines += ["", "### Realism against tiles of large maps (the kind of terrain a world of tiles is)", "",
              f"A world is one large terrain, so its tiles are also compared with the {len(world_tiles)} tiles of "
              f"{n} cells cut from the memory corpus's held-out large maps of {STYLE} ({held_large} map"
              f"{'s' if held_large != 1 else ''} of {large_held.heights.shape[-1]}² at {large_held.cell_size:.0f} m; "
              "a small reference, so read differences below the noise floor as ties). The whole maps of the "
              f"reference above are {fmt(whole_vs_world['total'])} away from these tiles: the two references are "
              "different kinds of terrain.", "",
              "| set | " + " | ".join(FAMILIES) + " | total |", "|---|" + "---|" * (len(FAMILIES) + 1)]
    lines += [f"| {label} | {realism_cells(d)} |" for label, d in world_rows.items()]
    lines += ["", "![walk](walk.png)", "", "![profiles](walk_profiles.png)", ""]

    return lines


def plateau_lines(m: Measured) -> list[str]:
    args, results = m.args, m.results
    lines: list[str] = []
    lines += [f"## 2. An artist's plateau, continued by tiles generated later", "",
              f"Tile (0, 0) raised by {PLATEAU * HEIGHT_M:.0f} m (a logged brush edit ramping up over its western "
              f"quarter); tiles 1-{args.reach} east generated afterwards, never committed. Raise kept = mean "
              "elevation of the tile minus the same tile in the world without the edit, over the raise.", "",
              "| condition | " + " | ".join(f"tile {d}" for d in range(1, args.reach + 1)) + " | step into tile 1 / mean |",
              "|---|" + "---|" * (args.reach + 1)]
    raise_m = PLATEAU * HEIGHT_M
    for c in CONDITIONS:
        r = results["plateau"][c]
        for key, label in (("edited", c), ("after_elsewhere", f"{c}, after commits in other regions")):
            if key in r:
                kept = (r[key] - r["plain"]).mean(axis=(1, 2))[1:] / raise_m
                lines.append(f"| {label} | " + " | ".join(f"{v:.0%}" for v in kept) + f" | {border_step(r[key]):.2f} |")
    r = results["plateau"]["memory"]
    lines += ["", f"Region banks after the commits elsewhere: {r['banks_after']} (the plateau's region (0, 0) "
              f"{'kept' if (0, 0) in [tuple(b) for b in r['banks_after']] else 'folded into the world level'}).",
              "", "![plateau profile](plateau_profile.png)", "", "![plateau](plateau.png)", ""]
    return lines


def main() -> None:
    args = parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    base_meta = read_metadata(args.models_dir / BASE_FILE)["config"]
    corpus = args.corpus or [str(ROOT / c) for c in base_meta["run"]["corpus"]]
    factor, cell = base_meta["factor"], base_meta["cell_size_m"]
    t0 = time.perf_counter()
    results = run_conditions(args)
    if results is None:
        return
    m = measure(args, results, corpus, factor, cell, t0)
    draw_pictures(m)
    lines = header_lines(m)
    summary = summary_lines(m)
    lines += ["## Summary", "", *summary]
    lines += denoising_lines(m) + walk_lines(m) + plateau_lines(m)
    (args.out / "README.md").write_text("\n".join(lines))
    model_card(args.models_dir, summary[:3] + ["", "Details: `reports/world_memory/README.md`."])
    print(f"wrote {args.out / 'README.md'}")


if __name__ == "__main__":
    main()
