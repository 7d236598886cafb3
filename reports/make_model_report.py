"""Regenerate reports/terrain_models/ and the model cards in models/: is the learned terrain believable?

    python reports/make_model_report.py [--per-style 5] [--seeds 3] [--models-dir models] [--out reports/terrain_models]
    python reports/make_model_report.py --split train --guidance 2 --qualities interactive --out /tmp/g2  # tuning

For every style, each held-out corpus map gets `--seeds` generated counterparts conditioned on that map's
sliders and scaled to its relief (same 256² grid at the corpus cell size), and as many fBm maps with the
same relief. The realism metric families of each set are compared with the held-out maps'; the
style classifier (models/style_classifier.json) says whether the styles are told apart. Few-step
cost: the interactive setting against the full sampler from the same seeds. Diversity: mean
pairwise RMS difference between seeds, against the same figure for held-out maps.

Real ground: every map (generated at each setting, held-out, fBm) is also area-averaged to the 120 m
cells of the real elevation samples (``backend/data/real_dems.py``: 64² crops of the SRTM and USGS
DEMs that registry packages ship) and compared with them: every metric family, the pit density and
the drainage-area exceedance exponent. Generated maps go through the erosion stage (``--erosion``);
the interactive setting is also measured without it, the sampler's raw output.

Settings (the guidance scale) are tuned with `--split train`, which compares against training maps instead
and writes no model cards, so the held-out figures stay unseen by the tuning.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # allow `python reports/make_model_report.py` from anywhere
    sys.path.insert(0, str(ROOT))

from backend.data.datasets import MapSet, load_maps  # noqa: E402
from backend.data.real_dems import real_samples  # noqa: E402
from backend.generators.base import GenerateRequest  # noqa: E402
from backend.generators.learned import DiffusionGenerator  # noqa: E402
from backend.metrics.realism import (FAMILIES, contact_sheet, grid_alignment, pit_density, set_distance,  # noqa: E402
                                     terrain_features)
from backend.metrics.reference import averaged_down  # noqa: E402
from backend.metrics.style_classifier import StyleClassifier, confusion, feature_vector  # noqa: E402
from backend.models.inference import read_metadata  # noqa: E402
from backend.models.shipped import BASE_FILE, MODELS_DIR, SUPERRES_FILE  # noqa: E402
from backend.models.terrain import QUALITY  # noqa: E402
from backend.simulation.spectral_noise import fbm  # noqa: E402
from backend.terrain import Heightfield  # noqa: E402

OUT = ROOT / "reports" / "terrain_models"
SIZE = 256
REAL_CELL_M, REAL_SIDE = 120.0, 64  # the real samples' scale: generated 256² maps at 30 m averaged x4
RAW = "interactive, erosion off"  # the sampler's own output, before the erosion stage
# Mountain styles are also held against mountain ground: Alpine and Rocky Mountain DEMs (the 120 m samples
# are mostly low-relief savanna) at 240 m, in 15 km windows: generated at 512² x 30 m, averaged x8.
MOUNTAIN_STYLES, MOUNTAIN_DEMS = ("alpine", "glacial_valleys"), ("aletsch", "rmnp")
MOUNTAIN_CELL_M, MOUNTAIN_SIDE, MOUNTAIN_MAPS = 240.0, 64, 8


def fmt(x: float) -> str:
    return f"{x:.3f}"


def generate(gen: DiffusionGenerator, style: str, sliders: dict[str, float], relief: float, seed: int,
             quality: str, cell_size: float, guidance: float, erosion: str, size: int = SIZE) -> tuple[Heightfield, float]:
    """One generated map (size² cells) with the given conditioning and exact relief; returns it and its seconds."""
    elev = sliders["elevation_range"]
    request = GenerateRequest(style_weights={style: 1.0}, sliders=sliders, seed=seed, resolution=size,
                              size_m=cell_size * (size - 1), height_m=relief / (0.2 + 0.8 * elev),
                              generator="diffusion", quality=quality, guidance=guidance, erosion_stage=erosion)
    t0 = time.perf_counter()
    hf = gen.generate(request, lambda step, total, preview: None)
    return hf, time.perf_counter() - t0


def normalised(h: np.ndarray) -> np.ndarray:
    return (h - h.mean()) / max(float(h.std()), 1e-9)


def mean_pairwise_rms(maps: list[np.ndarray]) -> float:
    """Diversity: mean RMS difference between pairs of maps, each normalised to zero mean, unit std."""
    pairs = list(itertools.combinations([normalised(m) for m in maps], 2))
    return float(np.mean([np.sqrt(np.mean((a - b) ** 2)) for a, b in pairs])) if pairs else float("nan")


def model_card(path: Path, title: str, meta: dict, figures: list[str]) -> None:
    run = meta["run"]
    unet = meta.get("unet", {})
    lines = [f"# {title}", "", f"File: `{path.name}` (safetensors, EMA weights, config in the metadata).", "",
             "| | |", "|---|---|",
             f"| kind | {meta['kind']} |",
             f"| parameters | {run['parameters']:,} |",
             f"| network | U-Net {json.dumps(unet)} |" if unet else "| network | see metadata |",
             f"| data | corpus {', '.join(run['corpus'])}: {run['train_maps']} simulated maps "
             f"(train split), {run['train_items']:,} items with flips/rotations |",
             f"| styles | {', '.join(meta['style_names'])} |",
             f"| sliders | {', '.join(meta['slider_names'])} |",
             *started_from_row(meta),
             f"| training | {run['steps_done']} steps, batch {run['batch_size']}, "
             f"config `{run['config_file']}` |",
             f"| time | {run.get('train_seconds_total', float('nan')) / 60:.0f} min |",
             f"| hardware | {run['hardware']}, torch {run['torch']} |",
             f"| final loss (EDM, last 200 steps) | {run.get('final_loss_mean_last_200_steps', float('nan')):.4f} |",
             "", "Reproduce: `bash scripts/train_models.sh` (or the one line for this model inside it).", "",
             "## Measured (reports/terrain_models/README.md)", "", *figures, ""]
    path.with_suffix(".md").write_text("\n".join(lines))


def started_from_row(meta: dict) -> list[str]:
    """The weights a fine-tuned model started from (its config names them by hash), or nothing."""
    start = meta.get("fine_tuned_from")
    if not start:
        return []
    return [f"| started from | `{start['file']}` sha256 {start['sha256'][:16]}... (the weights shipped at revision "
            f"{start.get('revision', '?')}, {start.get('about', 'trained on an earlier corpus')}; "
            "`scripts/train_models.sh` takes them from git history) |"]


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--per-style", type=int, default=5, help="held-out maps (and generated maps) per style")
    ap.add_argument("--seeds", type=int, default=3, help="generated maps (seeds) per held-out map")
    ap.add_argument("--models-dir", type=Path, default=MODELS_DIR)
    ap.add_argument("--out", type=Path, default=OUT, help="report folder (model cards go next to the models)")
    ap.add_argument("--split", choices=("heldout", "train"), default="heldout",
                    help="maps to compare with; train = for tuning settings (no model cards)")
    ap.add_argument("--guidance", type=float, default=GenerateRequest.guidance, help="classifier-free guidance scale")
    ap.add_argument("--qualities", default="interactive,full", help="settings to generate at (interactive first)")
    ap.add_argument("--erosion", default=GenerateRequest.erosion_stage, help="erosion stage of the generated maps")
    return ap.parse_args()


@dataclass
class Comparison:
    """Generated, held-out and fBm maps compared, style by style."""

    times: dict[str, list[float]]  # quality -> seconds per generated map
    rows: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # style -> set -> realism distances
    per_style: dict[str, int] = field(default_factory=dict)  # held-out maps used per style
    truth: list[str] = field(default_factory=list)  # requested style of each generated (interactive) map
    predicted: list[str] = field(default_factory=list)  # the classifier's answer for it
    held_truth: list[str] = field(default_factory=list)
    held_pred: list[str] = field(default_factory=list)
    few_step_rms: list[float] = field(default_factory=list)  # interactive vs full from the same seed
    diversity: dict[str, tuple[float, float]] = field(default_factory=dict)  # style -> (generated, held-out)
    at_real_scale: dict[str, dict[str, list[Heightfield]]] = field(default_factory=dict)  # style -> set -> 120 m maps
    facets: dict[str, dict[str, float]] = field(default_factory=dict)  # style -> set -> mean grid alignment
    figures: dict[str, Any] = field(default_factory=dict)  # the report's headline figures, for results.json

    def accuracy(self) -> tuple[float, float]:
        """The style classifier's accuracy on the generated maps and on the held-out maps themselves."""
        return (float(np.mean([t == p for t, p in zip(self.truth, self.predicted)])),
                float(np.mean([t == p for t, p in zip(self.held_truth, self.held_pred)])))

    def fbm_wins(self) -> dict[str, dict[str, bool]]:
        """Style -> family -> whether the generated (interactive) maps are closer to the held-out than fBm."""
        return {st: {f: r["interactive"][f] < r["fbm"][f] for f in FAMILIES} for st, r in self.rows.items()}


def compare_style(c: Comparison, s: int, style: str, held: MapSet, gen: DiffusionGenerator,
                  classifier: StyleClassifier, qualities: list[str], args: argparse.Namespace,
                  rng: np.random.Generator) -> None:
    """Generate maps like the style's held-out ones, measure both and fBm, and draw the contact sheet."""
    rows, per_style, times, diversity = c.rows, c.per_style, c.times, c.diversity
    truth, predicted, held_truth, held_pred, few_step_rms = c.truth, c.predicted, c.held_truth, c.held_pred, c.few_step_rms
    cs = held.cell_size
    idx = np.flatnonzero(held.style == s)[:args.per_style]
    if len(idx) == 0:
        return
    real, noise = [], []
    made: dict[str, list[Heightfield]] = {q: [] for q in qualities}
    for k, i in enumerate(idx):
        h = held.heights[i]
        sliders = {n: float(v) for n, v in zip(held.slider_names, held.sliders[i])}
        relief = float(np.ptp(h))
        real.append(Heightfield(h, cs, style=style))
        for j in range(args.seeds):
            seed = 1000 + k + 100 * j
            for quality in qualities:
                hf, dt = generate(gen, style, sliders, relief, seed, quality, cs, args.guidance, args.erosion)
                made[quality].append(hf)
                times[quality].append(dt)
            made.setdefault(RAW, []).append(generate(gen, style, sliders, relief, seed, "interactive", cs,
                                                     args.guidance, "off")[0])
            noise.append(Heightfield((fbm(SIZE, rng) * relief).astype(np.float32), cs, style="fbm"))
    interactive, full = made["interactive"], made.get("full", [])
    feats = {name: [terrain_features(hf) for hf in group]
             for name, group in (("held-out", real), *made.items(), ("fbm", noise))}
    rows[style] = {name: set_distance(f, feats["held-out"]) for name, f in feats.items() if name != "held-out"}
    sets = (*made.items(), ("held-out corpus", real), ("fbm", noise))
    c.at_real_scale[style] = {name: [averaged_down(hf, REAL_SIDE) for hf in group] for name, group in sets}
    c.facets[style] = {name: float(np.mean([grid_alignment(hf.heights, hf.cell_size) for hf in group]))
                       for name, group in sets}
    truth += [style] * len(interactive)
    predicted += classifier.predict(np.stack([feature_vector(hf) for hf in interactive]))
    held_truth += [style] * len(real)
    held_pred += classifier.predict(np.stack([feature_vector(hf) for hf in real]))
    few_step_rms += [float(np.sqrt(np.mean((normalised(a.heights) - normalised(b.heights)) ** 2)))
                     for a, b in zip(interactive, full)]
    diversity[style] = (mean_pairwise_rms([hf.heights for hf in interactive]),
                        mean_pairwise_rms([hf.heights for hf in real]))
    per_style[style] = len(idx)
    sheet = real[:3] + interactive[:3] + full[:2]
    contact_sheet(sheet, args.out / f"style_{style}.png",
                  [f"held-out {k}" for k in range(len(real[:3]))]
                  + [f"generated {k} (interactive)" for k in range(len(interactive[:3]))]
                  + [f"generated {k} (full)" for k in range(len(full[:2]))], cols=4)
    print(f"{style}: " + ", ".join(f"{n} total {fmt(d['total'])}" for n, d in rows[style].items()), flush=True)


def realism_lines(c: Comparison, classifier: StyleClassifier, qualities: list[str], args: argparse.Namespace,
                  cs: float) -> list[str]:
    """The realism table (generated and fBm vs held-out) and the style classifier's confusion."""
    rows, truth, predicted, styles = c.rows, c.truth, c.predicted, list(c.rows)
    acc, held_acc = c.accuracy()
    c.figures["classifier"] = {"generated": acc, "heldout": held_acc}
    wins = c.fbm_wins()
    n_win = sum(v for w in wins.values() for v in w.values())
    lines = [
        "# Learned terrain: quality report",
        "",
        "Regenerate: `python reports/make_model_report.py` (needs the corpus: `bash scripts/train_models.sh` "
        "builds it; metrics: `backend/metrics/realism.py`, classifier: `backend/metrics/style_classifier.py`).",
        "",
        f"Per style: up to {args.per_style} {args.split} corpus maps ({SIZE}² at {cs:g} m) and, for each, "
        f"{args.seeds} generated maps (seeds) conditioned on its sliders with its relief, at the "
        f"{' and '.join(qualities)} setting, guidance scale {args.guidance:g}, and as many fBm maps with its relief. "
        "Distances are between the sets' mean features and the corpus maps' of the style (lower = closer).",
        f"Machine: {platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}.",
        "",
        f"## Generated vs fBm, per style and family (interactive setting): generated closer on {n_win} of "
        f"{len(styles) * len(FAMILIES)}",
        "",
        "| style | set | " + " | ".join(FAMILIES) + " | total |",
        "|---|---|" + "---|" * (len(FAMILIES) + 1),
    ]
    for st in styles:
        for name in (*qualities, RAW, "fbm"):
            d = rows[st][name]
            cells = [fmt(d[f]) + (" ✓" if name == "interactive" and wins[st][f] else "") for f in FAMILIES]
            lines.append(f"| {st} | {name} | " + " | ".join(cells) + f" | {fmt(d['total'])} |")
    lines += ["", "✓ = generated (interactive) closer to the held-out maps than fBm on that family.", ""]
    lines += ["## Style conditioning: nearest-centroid classifier on the realism features", "",
              f"Accuracy on generated maps: **{acc:.2f}** ({len(truth)} maps, chance {1 / len(styles):.2f}); "
              f"on the held-out corpus maps themselves: {held_acc:.2f}.", "",
              "Confusion (rows: requested style, columns: predicted):", "",
              "| | " + " | ".join(classifier.styles) + " |", "|---|" + "---|" * len(classifier.styles)]
    for st, row in zip(classifier.styles, confusion(truth, predicted, classifier.styles)):
        lines.append(f"| {st} | " + " | ".join(str(v) for v in row) + " |")
    print(f"summary: split {args.split}, guidance {args.guidance:g}: closer than fBm on {n_win} of "
          f"{len(styles) * len(FAMILIES)}, classifier {acc:.2f}, mean total "
          f"{np.mean([rows[s]['interactive']['total'] for s in styles]):.3f}", flush=True)
    return lines


@dataclass(frozen=True)
class GroundFigures:
    """One set of maps at the real samples' scale, against them."""

    distance: dict[str, float]  # family -> set distance to the real samples, and "total"
    pits: float  # mean pit density
    area_exponent: float  # mean drainage-area exceedance exponent


def ground_figures(maps: list[Heightfield], real: list[dict[str, dict[str, float]]]) -> GroundFigures:
    feats = [terrain_features(hf) for hf in maps]
    return GroundFigures(set_distance(feats, real), float(np.mean([pit_density(hf.heights) for hf in maps])),
                         float(np.nanmean([f["drainage"]["area_exponent"] for f in feats])))


GROUND_HEADER = ("| style | set | " + " | ".join(FAMILIES) + " | total | pits % (x real) | area exponent (- real) |",
                 "|---|---|" + "---|" * (len(FAMILIES) + 3))


@functools.cache
def real_reference(cell_m: float, side: int, names: tuple[str, ...] | None = None
                   ) -> tuple[list[Heightfield], list[dict[str, dict[str, float]]], float, float, str]:
    """Real crops at ``cell_m``: the maps, their features, mean pit density, mean area exponent, the sources (read
    and measured once per scale: the real-ground and style-over-seed sections share the 120 m crops)."""
    real = real_samples(cell_m, side, names)
    feats = [terrain_features(hf) for hf in real]
    pits = float(np.mean([pit_density(hf.heights) for hf in real]))
    tau = float(np.nanmean([f["drainage"]["area_exponent"] for f in feats]))
    by_source: dict[str, list[float]] = {}
    for hf, f in zip(real, feats):
        by_source.setdefault(hf.style, []).append(f["drainage"]["area_exponent"])
    sources = ", ".join(f"{n} {len(v)}, exponent {np.nanmean(v):.3f}" for n, v in sorted(by_source.items()))
    return real, feats, pits, tau, sources


def ground_row(style: str, name: str, g: GroundFigures, real_pits: float, real_tau: float) -> str:
    """One table row of a set against real ground: distances per family, pits and exponent beside the real's."""
    return (f"| {style} | {name} | " + " | ".join(fmt(g.distance[f]) for f in FAMILIES)
            + f" | {fmt(g.distance['total'])} | {100 * g.pits:.2f} ({g.pits / real_pits:.2f}x) "
            f"| {g.area_exponent:.3f} ({g.area_exponent - real_tau:+.3f}) |")


def real_ground_lines(c: Comparison, qualities: list[str], cell_size: float) -> list[str]:
    """Every set of every style against the real elevation samples at 120 m: the realism issue's checks, then
    the grid facets against the same samples."""
    real, real_feats, real_pits, real_tau, sources = real_reference(REAL_CELL_M, REAL_SIDE)
    lines = ["", f"## Against real ground ({REAL_CELL_M:g} m cells, {REAL_SIDE}² maps)", "",
             f"Real samples: {len(real)} crops of SRTM / USGS DEMs ({sources}; `data/real_dems/`): pit density "
             f"{100 * real_pits:.2f} %, drainage-area exponent {real_tau:.3f}. Every other set is area-averaged from "
             f"its {SIZE}² maps to the same cells. Distances as above, to the real samples' mean features.", "",
             *GROUND_HEADER]
    checks = {"pits <= 1.5x real": [], "area exponent within 0.05": [], "full at least as close as interactive": []}
    for st, sets in c.at_real_scale.items():
        figures = {name: ground_figures(maps, real_feats) for name, maps in sets.items()}
        lines += [ground_row(st, name, g, real_pits, real_tau) for name, g in figures.items()]
        c.figures.setdefault("real_ground", {})[st] = {
            name: {"pits_percent": 100 * g.pits, "area_exponent": g.area_exponent} for name, g in figures.items()}
        for q in qualities:
            checks["pits <= 1.5x real"].append(figures[q].pits <= 1.5 * real_pits)
            checks["area exponent within 0.05"].append(abs(figures[q].area_exponent - real_tau) <= 0.05)
        if "full" in figures:
            checks["full at least as close as interactive"] += [
                figures["full"].distance[f] <= figures["interactive"].distance[f] for f in FAMILIES]
    lines += ["", "Checks (generated with the erosion stage, every style and setting):", ""]
    lines += [f"- {name}: {sum(v)} of {len(v)} hold" for name, v in checks.items()]
    c.figures["real_ground_checks"] = {name: {"hold": int(sum(v)), "of": len(v)} for name, v in checks.items()}
    c.figures["real_samples"] = {"pits_percent": 100 * real_pits, "area_exponent": real_tau}
    return lines + facet_lines(c, qualities, real, cell_size)


def facet_lines(c: Comparison, qualities: list[str], real: list[Heightfield], cell_size: float) -> list[str]:
    """How much each set's slopes face the grid's eight neighbours, against the ``real`` crops."""
    real_facets = np.array([grid_alignment(hf.heights, hf.cell_size) for hf in real])
    limit = float(np.percentile(real_facets, 95))
    names = list(next(iter(c.facets.values())))
    lines = ["", "## Grid facets", "",
             "Slopes facing the grid's axes and diagonals more than any other eight directions "
             "(`realism.grid_alignment`: the aspect's eight-fold harmonic over its seven- and nine-fold ones, slope-"
             f"weighted; 0 = no preferred direction), mean per set at {SIZE}² x {cell_size:g} m. Real samples "
             f"({len(real)} crops at {REAL_CELL_M:g} m): mean {real_facets.mean():.3f}, 95th percentile {limit:.3f}. "
             "Area gathered along the steepest neighbour's paths (D8) cuts such facets: the erosion stages and the "
             "corpus's landscape evolution gather it over multiple flow directions (mature keeps D8).", "",
             "| style | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    lines += [f"| {st} | " + " | ".join(f"{v:.3f}" for v in sets.values()) + " |" for st, sets in c.facets.items()]
    held = [sets[q] <= limit for sets in c.facets.values() for q in qualities]
    lines += ["", f"- generated with the erosion stage at most the real samples' 95th percentile: {sum(held)} of "
              f"{len(held)} hold"]
    return lines


def mountain_lines(gen: DiffusionGenerator, held: MapSet, qualities: list[str], args: argparse.Namespace) -> list[str]:
    """Mountain styles against mountain DEMs at 240 m, each generated map's relief matched to one real crop's."""
    real, real_feats, real_pits, real_tau, sources = real_reference(MOUNTAIN_CELL_M, MOUNTAIN_SIDE, MOUNTAIN_DEMS)
    size = MOUNTAIN_SIDE * round(MOUNTAIN_CELL_M / held.cell_size)
    lines = ["", f"## Mountain styles against mountain ground ({MOUNTAIN_CELL_M:g} m cells, {MOUNTAIN_SIDE}² maps)", "",
             f"Real samples: {len(real)} crops ({sources}): pit density {100 * real_pits:.2f} %, drainage-area "
             f"exponent {real_tau:.3f}. Generated: {size}² maps at {held.cell_size:g} m averaged to the same cells, "
             f"the relief of each matched to one real crop's; sliders of the style's first held-out map.", "",
             *GROUND_HEADER]
    for style in MOUNTAIN_STYLES:
        first = int(np.flatnonzero(held.style == held.style_names.index(style))[0])
        sliders = {n: float(v) for n, v in zip(held.slider_names, held.sliders[first])}
        matched = [real[i] for i in np.linspace(0, len(real) - 1, min(MOUNTAIN_MAPS, len(real))).round().astype(int)]
        for q in qualities:
            maps = [averaged_down(generate(gen, style, sliders, float(np.ptp(crop.heights)), 2000 + k, q,
                                           held.cell_size, args.guidance, args.erosion, size)[0], MOUNTAIN_SIDE)
                    for k, crop in enumerate(matched)]
            lines.append(ground_row(style, q, ground_figures(maps, real_feats), real_pits, real_tau))
    return lines


STYLE_SEEDS = 6  # seeds each style is drawn with for the style-over-seed check
BASE_SIDE = 64  # the base model's map side: generated maps averaged down to it before correlating


def _flat(heights: np.ndarray) -> np.ndarray:
    """A map normalised to zero mean and unit std, flattened: the mean of two such products is their correlation."""
    return normalised(heights.astype(np.float64)).ravel()


def style_over_seed_lines(gen: DiffusionGenerator, styles: list[str], cell_size: float, guidance: float,
                          figures: dict[str, Any]) -> list[str]:
    """The realism issue's check that the style, not the seed, decides the large form: every pair of styles drawn
    with the same seed, correlated at the base level, beside pairs of seeds of one style and, for scale, pairs of
    real ground windows of the same size and cells (independent land: how often two of them pass 0.5 by chance)."""
    maps = {}
    for style, seed in itertools.product(styles, range(STYLE_SEEDS)):
        request = GenerateRequest(style_weights={style: 1.0}, seed=seed, resolution=SIZE,
                                  size_m=cell_size * (SIZE - 1), generator="diffusion", quality="interactive",
                                  guidance=guidance, erosion_stage="off")
        base_level = averaged_down(gen.generate(request, lambda step, total, preview: None), BASE_SIDE)
        maps[style, seed] = _flat(base_level.heights)
    corr = lambda a, b: float(np.mean(a * b))  # noqa: E731  (both normalised)
    same_seed = [corr(maps[a, s], maps[b, s]) for a, b in itertools.combinations(styles, 2) for s in range(STYLE_SEEDS)]
    same_style = [corr(maps[st, s], maps[st, t]) for st in styles
                  for s, t in itertools.combinations(range(STYLE_SEEDS), 2)]
    base_cell = cell_size * SIZE / BASE_SIDE
    real = [corr(a, b) for a, b in itertools.combinations(
        [_flat(hf.heights) for hf in real_reference(base_cell, BASE_SIDE)[0]], 2)]

    figures["style_over_seed"] = {name: {"pairs": len(r), "mean": float(np.mean(r)), "largest": float(max(r)),
                                         "above_half": int(sum(v > 0.5 for v in r)),
                                         "share_above_half": float(np.mean([v > 0.5 for v in r]))}
                                  for name, r in (("same_seed", same_seed), ("same_style", same_style), ("real", real))}

    def row(name: str, key: str) -> str:
        f = figures["style_over_seed"][key]
        return (f"| {name} | {f['pairs']} | {f['mean']:.3f} | {f['largest']:.3f} | {f['above_half']} | "
                f"{f['share_above_half']:.3f} |")

    return ["", "## Style over seed", "",
            f"Each style drawn with seeds 0-{STYLE_SEEDS - 1} (interactive, erosion off, default sliders), averaged "
            f"down to the base model's {BASE_SIDE}² ({base_cell:g} m cells) and correlated: the same seed in two "
            "different styles against two seeds of one style, and against two windows of real ground of the same size "
            "and cells (every pair of the real samples: unrelated land, the share of pairs above 0.5 that chance "
            "alone gives maps of this size).", "",
            "| pairs | count | mean correlation | largest | above 0.5 | share above 0.5 |", "|---|---|---|---|---|---|",
            row("same seed, two styles", "same_seed"), row("one style, two seeds", "same_style"),
            row(f"real ground, two windows ({base_cell:g} m)", "real")]


def cost_lines(c: Comparison, qualities: list[str]) -> list[str]:
    """Few-step cost, diversity across seeds and the pictures."""
    rows, times, few_step_rms, diversity = c.rows, c.times, c.few_step_rms, c.diversity
    styles = list(rows)
    lines: list[str] = []
    t_int, t_full = np.median(times["interactive"]), np.median(times["full"])
    lines += ["", "## Few-step cost", "",
              f"Interactive = {QUALITY['interactive']}; full = {QUALITY['full']}.", "",
              f"- median time per {SIZE}² map: interactive {t_int:.2f} s, full {t_full:.2f} s ({t_full / t_int:.1f}x)",
              f"- RMS difference interactive vs full from the same seed (heights normalised to unit std): "
              f"{np.mean(few_step_rms):.3f} (two unrelated maps differ by about 1.4)",
              "- total distance to held-out, mean over styles: interactive "
              f"{np.mean([rows[s]['interactive']['total'] for s in styles]):.3f}, full "
              f"{np.mean([rows[s]['full']['total'] for s in styles]):.3f}, fBm "
              f"{np.mean([rows[s]['fbm']['total'] for s in styles]):.3f}", "",
              "## Diversity across seeds", "",
              "Mean pairwise RMS difference of normalised maps (different seeds and sliders) vs the same for "
              "held-out maps of the style; near 0 would mean collapse.", "",
              "| style | generated | held-out |", "|---|---|---|"]
    for st, (g, r) in diversity.items():
        lines.append(f"| {st} | {g:.3f} | {r:.3f} |")
    lines += ["", "## Pictures (hillshade, sun from the north-west; 3 held-out, 3 interactive, 2 full)", ""]
    for st in styles:
        lines += [f"### {st}", "", f"![{st}](style_{st}.png)", ""]
    return lines


def model_cards(c: Comparison, classifier: StyleClassifier, models_dir: Path, base_meta: dict[str, Any]) -> None:
    styles = list(c.rows)
    acc, held_acc = c.accuracy()
    n_win = sum(v for w in c.fbm_wins().values() for v in w.values())
    t_int, t_full = np.median(c.times["interactive"]), np.median(c.times["full"])
    few_step_rms = c.few_step_rms
    figures = [f"- generated closer to held-out than fBm on {n_win} of {len(styles) * len(FAMILIES)} "
               "(style, metric family) pairs",
               f"- style classifier accuracy on generated maps {acc:.2f} (held-out maps {held_acc:.2f})",
               f"- {SIZE}² median time on this CPU: interactive {t_int:.2f} s, full {t_full:.2f} s",
               f"- interactive vs full RMS (normalised) {np.mean(few_step_rms):.3f}"]
    model_card(models_dir / BASE_FILE, "Terrain base model", base_meta["config"] | {"unet": base_meta["denoiser"]["unet"]},
               figures)
    sr_meta = read_metadata(models_dir / SUPERRES_FILE)
    model_card(models_dir / SUPERRES_FILE, "Terrain super-resolution model (x4)",
               sr_meta["config"] | {"unet": sr_meta["denoiser"]["unet"]}, figures)


def main() -> None:
    args = parse_args()
    qualities = args.qualities.split(",")
    args.out.mkdir(parents=True, exist_ok=True)
    base_meta = read_metadata(args.models_dir / BASE_FILE)
    corpus = [str(ROOT / c) for c in base_meta["config"]["run"]["corpus"]]
    held = load_maps(corpus, args.split)
    classifier = StyleClassifier.load(args.models_dir / "style_classifier.json")
    gen = DiffusionGenerator("cpu", args.models_dir)
    rng = np.random.default_rng(1234)
    comparison = Comparison(times={q: [] for q in qualities})
    for s, style in enumerate(held.style_names):
        compare_style(comparison, s, style, held, gen, classifier, qualities, args, rng)
    lines = realism_lines(comparison, classifier, qualities, args, held.cell_size)
    if "full" not in qualities:  # a tuning run: the tables above are all it is for
        (args.out / "README.md").write_text("\n".join(lines))
        return
    lines += real_ground_lines(comparison, qualities, held.cell_size)
    lines += mountain_lines(gen, held, qualities, args)
    lines += style_over_seed_lines(gen, list(held.style_names), held.cell_size, args.guidance, comparison.figures)
    lines += cost_lines(comparison, qualities)
    (args.out / "README.md").write_text("\n".join(lines))
    (args.out / "results.json").write_text(json.dumps(comparison.figures, indent=1))
    if args.split != "heldout":
        return
    model_cards(comparison, classifier, args.models_dir, base_meta)
    print("\n".join(lines[:40]))


if __name__ == "__main__":
    main()
