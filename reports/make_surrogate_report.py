"""Regenerate reports/erosion_surrogate/ and models/erosion_surrogate.md: does the learned erosion step hold?

    python reports/make_surrogate_report.py [--model models/erosion_surrogate.safetensors]
        [--corpus corpus/v2a corpus/v2b corpus/v2c] [--out reports/erosion_surrogate]

On held-out terrain (corpus maps of the held-out split, and maps the shipped diffusion models make from
held-out seeds with the erosion stage off), for every horizon K on the surrogate's ladder:
relative error of the change ||pred - true||² / ||true change||² (and of the implicit K-step alone,
the network's input, to show what the network adds), river-channel IoU (upstream area above a fixed
threshold), hypsometric integral gap, slope histograms; ten chained calls against one physics run of 10 K
steps; the gate's recall and skipped share on settled terrain (land after SETTLE_STEPS physics steps); the trust map's
fallback (error and tiles sent to physics); seams of a 4 x 4-window run over a 1024² world; pictures.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy.ndimage import binary_dilation, zoom
from scipy.stats import spearmanr

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from backend.metrics.realism import hillshade, hypsometry_features  # noqa: E402
from backend.models.erosion_surrogate import MARGIN, ErosionSurrogate  # noqa: E402
from backend.simulation.landscape import erode  # noqa: E402
from backend.simulation.learned_steps import (MATURE_STEP, StreamPowerPhysics, drainage, height_scale,  # noqa: E402
                                              surrogate_inputs)
from backend.simulation.surrogate_stage import (BLEND, PHYSICS_MARGIN, physics_on_tiles, reference_plans,  # noqa: E402
                                                run_stage, tile_rms, trust_map, trust_reference)
from backend.training.train_erosion_surrogate import CELL_SIZE, corpus_maps, generated_maps  # noqa: E402

CHANNEL_CELLS = 200  # a cell is a river channel when at least this many cells drain through it
# "settled terrain": the held-out maps after this many physics steps. At D = 1500 m² a step the land still moves
# 0.5-2 % of its scale a step after 60 steps and under 1e-4 after 300 (measured on the held-out corpus maps).
SETTLE_STEPS = 300
TILE = 32  # tiles of the gate and the trust map on the 256² maps
CHAINED = 10
NOISE_FLOOR = 1e-3  # input noise (x the map's scale) of the physics-vs-physics channel IoU
ORACLE_SHARES = (0.1, 0.2, 0.3)  # shares of tiles the oracle fallback redoes by physics


def relative_error(pred: np.ndarray, true: np.ndarray, start: np.ndarray) -> float:
    change = true - start
    return float(((pred - true) ** 2).sum() / max((change**2).sum(), 1e-12))


def channels(z: np.ndarray) -> np.ndarray:
    return drainage(z, CELL_SIZE, MATURE_STEP, 0).area >= CHANNEL_CELLS * CELL_SIZE**2


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def near(a: np.ndarray, b: np.ndarray) -> float:
    """Share of ``a``'s channel cells within one cell of a ``b`` channel (a diagnostic: channels one cell apart)."""
    return float((a & binary_dilation(b)).sum() / max(a.sum(), 1))


def hypsometric(z: np.ndarray) -> float:
    return hypsometry_features(z)["integral"]


def per_horizon(maps: dict[str, list[np.ndarray]], surrogate: ErosionSurrogate) -> list[dict[str, Any]]:
    """One row per (source, K): the single-call figures, the chained figures, the fallback figures."""
    physics = StreamPowerPhysics()
    rows = []
    for source, group in maps.items():
        for k in surrogate.horizons:
            figures: dict[str, list[float]] = {}
            for z in group:
                for name, value in single_call(z, k, surrogate, physics).items():
                    figures.setdefault(name, []).append(value)
                for name, value in chained(z, k, surrogate).items():
                    figures.setdefault(name, []).append(value)
            rows.append({"source": source, "K": k, **{n: float(np.mean(v)) for n, v in figures.items()},
                         "chained_finite": bool(np.all(figures["chained_finite"]))})
    return rows


def single_call(z: np.ndarray, k: int, surrogate: ErosionSurrogate, physics: StreamPowerPhysics) -> dict[str, float]:
    true = z + physics.delta({"heights": z}, CELL_SIZE, MATURE_STEP, k)["heights"]
    t0 = time.perf_counter()
    pred = z + surrogate.delta({"heights": z}, CELL_SIZE, MATURE_STEP, k)["heights"]
    seconds = time.perf_counter() - t0
    _, implicit, _ = surrogate_inputs(z, CELL_SIZE, MATURE_STEP, k)
    gated, log = run_stage(z, CELL_SIZE, replace(MATURE_STEP, steps=k), "gated", surrogate, tile=TILE)
    return {**fallback_oracle(z, true, pred, k, surrogate),
            "rel_error": relative_error(pred, true, z),
            "rel_error_implicit_only": relative_error(z + implicit, true, z),
            "channel_iou": iou(channels(true), channels(pred)), "channel_near": near(channels(true), channels(pred)),
            "channel_iou_implicit_only": iou(channels(true), channels(z + implicit)),
            "channel_iou_physics_noise": iou(channels(true), channels(perturbed_physics(z, k, physics))),
            "hyps_gap": abs(hypsometric(pred) - hypsometric(true)),
            "rel_error_gated": relative_error(gated, true, z), "fallback_share": log.fallback / max(log.tiles, 1),
            "gated_border_steps": tile_border_steps(gated - z, true - z),
            "gated_skipped_share": log.skipped / max(log.tiles, 1), "surrogate_s_256": seconds}


def tile_border_steps(change: np.ndarray, true_change: np.ndarray) -> float:
    """``edge_steps`` of a change at the gate's tile borders over the physics' own at the same rows: above 1 where
    tiles from different engines meet in a step."""
    borders = list(range(TILE - 1, change.shape[0] - 1, TILE))
    return edge_steps(change, borders) / edge_steps(true_change, borders)


def fallback_oracle(z: np.ndarray, true: np.ndarray, pred: np.ndarray, k: int,
                    surrogate: ErosionSurrogate) -> dict[str, float]:
    """What the fallback could do at best: the relative error of the change when the tiles of largest true error
    (each share of ORACLE_SHARES) are redone by physics as the stage redoes doubtful tiles, the rank correlation of
    the stage's trust map with the true per-tile error, and the error of the reference the trust map compares the
    K-jump with (shorter jumps, or the physics where K cannot split)."""
    error = tile_rms(pred - true, TILE)
    out = {}
    for share in ORACLE_SHARES:
        worst = np.zeros(error.shape, bool)
        worst.flat[np.argsort(-error, axis=None)[:int(share * error.size)]] = True
        redone = pred.copy()
        physics_on_tiles(z, redone, CELL_SIZE, MATURE_STEP, k, worst, TILE)
        out[f"oracle_{share:g}"] = relative_error(redone, true, z)
    trust = trust_map(z, pred - z, CELL_SIZE, MATURE_STEP, k, surrogate, TILE).ravel()
    out["trust_rank_correlation"] = float(spearmanr(trust, error.ravel()).correlation)
    out["rel_error_reference"] = relative_error(trust_reference(z, CELL_SIZE, MATURE_STEP, k, surrogate), true, z)
    return out


def perturbed_physics(z: np.ndarray, k: int, physics: StreamPowerPhysics) -> np.ndarray:
    """The physics' own K steps from the map plus white noise of NOISE_FLOOR x its scale: how far channels
    move for errors far below any surrogate's (the floor of the channel IoU)."""
    noisy = z + NOISE_FLOOR * height_scale(z) * np.random.default_rng(0).standard_normal(z.shape)
    return noisy + physics.delta({"heights": noisy}, CELL_SIZE, MATURE_STEP, k)["heights"]


def chained(z: np.ndarray, k: int, surrogate: ErosionSurrogate) -> dict[str, float]:
    """Ten calls of K against one physics run of 10 K steps (the real process), and ten physics runs of K
    against it: each run routes depressions to their spill in its first step, as every surrogate call does, where
    one long run does so once (the floor of the chained figure)."""
    true = erode(z, CELL_SIZE, replace(MATURE_STEP, steps=CHAINED * k))
    pred, restarted = z.copy(), z.copy()
    for _ in range(CHAINED):
        pred = pred + surrogate.delta({"heights": pred}, CELL_SIZE, MATURE_STEP, k)["heights"]
        restarted = erode(restarted, CELL_SIZE, replace(MATURE_STEP, steps=k))
    finite = bool(np.isfinite(pred).all())
    return {"chained_rel_error": relative_error(pred, true, z) if finite else float("inf"),
            "chained_physics_restarted": relative_error(restarted, true, z), "chained_finite": float(finite)}


def fresh_cliff(z: np.ndarray) -> np.ndarray:
    """``z`` with a fresh cliff: the north-east quarter raised by the map's height scale."""
    out = z.copy()
    n = z.shape[0]
    out[: n // 4, n // 2:] += height_scale(z)
    return out


def gate_on_settled(maps: list[np.ndarray], surrogate: ErosionSurrogate) -> list[dict[str, Any]]:
    """Per K: recall of the gate on tiles that change by more than its tolerance, and the share skipped, on
    settled land (the maps after SETTLE_STEPS physics steps) with a fresh cliff in one corner."""
    rows = []
    settled = [erode(z, CELL_SIZE, replace(MATURE_STEP, steps=SETTLE_STEPS)) for z in maps]
    still = float(np.mean([np.abs(erode(z, CELL_SIZE, MATURE_STEP) - z).mean() / height_scale(z) for z in settled]))
    settled_maps = [fresh_cliff(z) for z in settled]
    tolerance = surrogate.config.gate.tolerance
    for k in surrogate.horizons:
        changing = kept = skipped = total = 0
        for z in settled_maps:
            change = np.abs(erode(z, CELL_SIZE, replace(MATURE_STEP, steps=k)) - z) / height_scale(z)
            n = z.shape[0] // TILE
            moving = change.reshape(n, TILE, n, TILE).mean(axis=(1, 3)) >= tolerance
            skip = surrogate.settled({"heights": z}, CELL_SIZE, MATURE_STEP, k, TILE)
            changing += int(moving.sum())
            kept += int((moving & ~skip).sum())
            skipped += int(skip.sum())
            total += skip.size
        rows.append({"K": k, "changing_tiles": changing, "recall": kept / max(changing, 1),
                     "skipped_share": skipped / total, "changing_share": changing / total,
                     "settled_step_change": still})
    return rows


def edge_steps(field_: np.ndarray, borders: list[int]) -> float:
    """Mean |step| across the given row and column borders over the mean |step| everywhere else."""
    steps_r, steps_c = np.abs(np.diff(field_, axis=0)), np.abs(np.diff(field_, axis=1))
    border = np.zeros(steps_r.shape[0], bool)
    border[borders] = True
    across = np.concatenate([steps_r[border].ravel(), steps_c[:, border].ravel()]).mean()
    inside = np.concatenate([steps_r[~border].ravel(), steps_c[:, ~border].ravel()]).mean()
    return float(across / inside)


def seams(z: np.ndarray, surrogate: ErosionSurrogate) -> dict[str, float]:
    """A 1024² world run as 4 x 4 windows (cores of 256 cells): steps across core borders vs inside cores,
    and the same rows of one whole-map run (the control: what the terrain itself has there)."""
    inputs, implicit, scale = surrogate_inputs(z, CELL_SIZE, MATURE_STEP, 10)
    whole = implicit + scale * surrogate.correction(inputs, 10)
    tiled = implicit + scale * surrogate.correction(inputs, 10, window=256 + 2 * MARGIN)
    borders = [255, 511, 767]
    out = {"max_tiled_vs_whole_m": float(np.abs(tiled - whole).max())}
    for name, tiled_field, whole_field in (("change", tiled, whole), ("heights", z + tiled, z + whole)):
        out[f"edge_step_ratio_{name}"] = edge_steps(tiled_field, borders)
        out[f"edge_step_ratio_{name}_control"] = edge_steps(whole_field, borders)
    return out


def slope_histograms(maps: list[np.ndarray], surrogate: ErosionSurrogate, path: Path) -> None:
    """Slope histograms of physics and surrogate results side by side, one panel per K."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from backend.grids import slope_degrees

    ks = surrogate.horizons
    fig, axes = plt.subplots(1, len(ks), figsize=(3.2 * len(ks), 2.8), squeeze=False)
    bins = np.linspace(0, 45, 46)
    for ax, k in zip(axes[0], ks):
        for label, engine, style in (("physics", "physics", "-"), ("surrogate", "surrogate", "--")):
            slopes = [slope_degrees(run_stage(z, CELL_SIZE, replace(MATURE_STEP, steps=k), engine, surrogate)[0],
                                    CELL_SIZE).ravel() for z in maps]
            ax.hist(np.concatenate(slopes), bins=bins, histtype="step", linestyle=style, density=True, label=label)
        ax.set_title(f"K = {k}", fontsize=9)
        ax.set_xlabel("slope (degrees)", fontsize=8)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def pictures(maps: list[tuple[str, np.ndarray]], surrogate: ErosionSurrogate, out: Path) -> None:
    """Hillshades: raw, physics, surrogate, gated at the mature stage (K = 10), and where they differ."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mature = replace(MATURE_STEP, steps=10)
    fig, axes = plt.subplots(len(maps), 5, figsize=(16, 3.3 * len(maps)), squeeze=False)
    for row, (name, z) in zip(axes, maps):
        results = {engine: run_stage(z, CELL_SIZE, mature, engine, surrogate, tile=TILE)[0]
                   for engine in ("physics", "surrogate", "gated")}
        panels = [("raw " + name, hillshade(z, CELL_SIZE), "gray")]
        panels += [(f"{engine}, 10 steps", hillshade(h, CELL_SIZE), "gray") for engine, h in results.items()]
        error = np.abs(results["surrogate"] - results["physics"])
        panels.append((f"|surrogate - physics| (max {error.max():.0f} m)", error, "magma"))
        for ax, (title, image, cmap) in zip(row, panels):
            ax.imshow(image, cmap=cmap)
            ax.set_title(title, fontsize=9)
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(out / "physics_surrogate_gated.png", dpi=80)
    plt.close(fig)


def training_curve(log: Path, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(csv.DictReader(log.open()))
    steps = [int(r["step"]) for r in rows]
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot(steps, [float(r["train_relative_error"]) for r in rows], label="training batch")
    ax.plot(steps, [float(r["heldout_relative_error"]) for r in rows], label="held-out maps")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("relative error of the change")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def table(rows: list[dict[str, Any]], columns: list[tuple[str, str, str]]) -> str:
    """Markdown table: (key, header, format) per column."""
    lines = ["| " + " | ".join(h for _, h, _ in columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        lines.append("| " + " | ".join(format(r[k], f) for k, _, f in columns) + " |")
    return "\n".join(lines)


HORIZON_COLUMNS = [("source", "held-out", "s"), ("K", "K", "d"), ("rel_error", "rel. error of change", ".3f"),
                   ("rel_error_implicit_only", "implicit step alone", ".3f"), ("channel_iou", "channel IoU", ".3f"),
                   ("channel_near", "channels within 1 cell", ".3f"), ("channel_iou_implicit_only", "IoU implicit alone", ".3f"),
                   ("channel_iou_physics_noise", "IoU physics, 0.1 % noise", ".3f"),
                   ("hyps_gap", "hypsometric gap", ".4f"), ("chained_rel_error", "10 chained calls", ".3f"),
                   ("chained_physics_restarted", "10 physics runs of K", ".3f"),
                   ("chained_finite", "finite", ""), ("gated_skipped_share", "gated: tiles skipped", ".2f")]
FALLBACK_COLUMNS = [("source", "held-out", "s"), ("K", "K", "d"), ("rel_error", "rel. error of change", ".4f"),
                    ("rel_error_gated", "gated (fallback) error", ".4f"), ("fallback_share", "tiles to physics", ".2f"),
                    ("gated_border_steps", "gated: steps at tile borders over physics'", ".2f"),
                    *((f"oracle_{q:g}", f"oracle, {100 * q:.0f} % of tiles", ".4f") for q in ORACLE_SHARES),
                    ("trust_rank_correlation", "trust vs true tile error (Spearman)", ".2f"),
                    ("rel_error_reference", "the trust map's reference", ".4f")]


def verdicts(rows: list[dict[str, Any]], gate: list[dict[str, Any]], seam: dict[str, float]) -> list[str]:
    """One line per done-when target: met or not, with the figure."""
    def line(ok: bool, text: str) -> str:
        return f"- {'met' if ok else 'NOT met'}: {text}"

    worst = max(r["rel_error"] for r in rows)
    drift = max(rows, key=lambda r: r["chained_rel_error"] / max(r["rel_error"], 1e-9))
    ratio = drift["chained_rel_error"] / max(drift["rel_error"], 1e-9)
    floor = drift["chained_physics_restarted"] / max(drift["rel_error"], 1e-9)
    halved = [r for r in rows if r["rel_error_gated"] <= 0.5 * r["rel_error"] and r["fallback_share"] <= 0.3]
    oracle = [r for r in rows if r["oracle_0.3"] <= 0.5 * r["rel_error"]]
    return [line(worst <= 0.05, f"relative error of the change <= 0.05 at every K (worst {worst:.3f})"),
            line(min(r["channel_iou"] for r in rows) >= 0.7,
                 f"channel IoU >= 0.7 (lowest {min(r['channel_iou'] for r in rows):.3f}; the physics against itself "
                 f"from the map plus 0.1 % noise: lowest {min(r['channel_iou_physics_noise'] for r in rows):.3f})"),
            line(max(r["hyps_gap"] for r in rows) <= 0.01,
                 f"hypsometric integral within 0.01 (largest gap {max(r['hyps_gap'] for r in rows):.4f})"),
            line(ratio <= 2 and all(r["chained_finite"] for r in rows),
                 f"10 chained calls within 2x the single-call error, no NaN (largest ratio {ratio:.2f}, "
                 f"{drift['source']} at K = {drift['K']}, where the physics itself chained the same way is {floor:.2f}x "
                 "that single-call error off its one long run)"),
            line(min(g["recall"] for g in gate) >= 0.95 and min(g["skipped_share"] for g in gate) >= 0.5,
                 f"gate recall >= 0.95 with >= 50 % skipped on settled terrain (recall >= "
                 f"{min(g['recall'] for g in gate):.3f}, skipped >= {min(g['skipped_share'] for g in gate):.2f})"),
            line(len(halved) == len(rows),
                 f"fallback halves the error with <= 30 % of tiles to physics ({len(halved)} of {len(rows)} "
                 f"(source, K) rows; the oracle, the 30 % of tiles of largest true error redone, in {len(oracle)} "
                 f"of {len(rows)})"),
            line(abs(seam["edge_step_ratio_heights"] / seam["edge_step_ratio_heights_control"] - 1) <= 0.1,
                 f"4 x 4-window world: edge-step ratio over the whole-map run's at the same rows 1 +- 0.1 (heights "
                 f"{seam['edge_step_ratio_heights'] / seam['edge_step_ratio_heights_control']:.4f}, change "
                 f"{seam['edge_step_ratio_change'] / seam['edge_step_ratio_change_control']:.4f}; raw ratio of heights "
                 f"{seam['edge_step_ratio_heights']:.3f})")]


def write_readme(path: Path, results: dict[str, Any], lines: list[str], cfg: dict[str, Any]) -> None:
    gate_columns = [("K", "K", "d"), ("changing_tiles", "changing tiles", "d"),
                    ("changing_share", "changing share", ".2f"), ("recall", "recall", ".3f"),
                    ("skipped_share", "skipped share", ".2f")]
    seam = results["seams"]
    learned = tuple(results["learned"])
    plans = "; ".join(f"K = {k}: " + " and ".join("+".join(map(str, p)) for p in reference_plans(k, learned))
                      for k in learned if reference_plans(k, learned))
    text = f"""# The learned erosion surrogate: held-out figures

Made by `python reports/make_surrogate_report.py` (model sha256 `{results['model_sha256'][:16]}`; horizons the
product uses: {results['shipped']}, chosen as those at least 3x faster than physics in a run of
`benchmarks/bench_surrogate.py`, whose latest figures, which move with this host's speed, are in
`benchmarks/results/surrogate_cpu.txt`; every learned horizon is measured below). The surrogate jumps K steps of the erosion stage's process (fastscapelib stream
power, n = 1, and backward-Euler hillslope diffusion, {results['process']['diffusion']:g} m² a step, at 30 m cells) in one
call; every figure compares it with the physics on held-out terrain:
{cfg['maps']['heldout']['corpus']} held-out corpus maps and {cfg['maps']['heldout']['generated']} maps the shipped
diffusion models made from held-out seeds with the erosion stage off (256², 30 m).

## Done-when

{chr(10).join(lines)}

## Per horizon

Relative error: ||pred - true||² / ||true change||², averaged over maps. "implicit step alone" is the network's
input (one implicit step of length K: stream power on the fixed flow graph, then backward-Euler hillslope diffusion
of K D) used as the answer: what the network adds. Channel IoU: cells draining at least {CHANNEL_CELLS} cells, physics
vs surrogate result; "channels within 1 cell" (a diagnostic, not the target): the share of the physics' channel
cells with a surrogate channel cell at most one cell away; "IoU physics, 0.1 % noise": physics vs the physics run
from the map plus white noise of {NOISE_FLOOR:g} x its scale (how much channels move for tiny errors). Chained: ten
calls of K against one physics run of 10 K steps; "10 physics runs of K": the physics itself chained the same way
(each run routes depressions to their spill once, as each surrogate call does), the floor of that figure. Gated: the
gate skips settled tiles ({TILE}² tiles).

{table(results['horizons'], HORIZON_COLUMNS)}

## Fallback

The gated engine's trust map: per tile the RMS (m) of one K-jump minus the same K made of shorter jumps, the mean of
two compositions ({plans});
at the ladder's shortest K, which cannot split, the physics' own K steps. The tiles where it is largest, at most {100 * results['fallback_share']:.0f} % of the map and none
below the gate's tolerance, are redone by physics on a window with a {PHYSICS_MARGIN}-cell margin (or one whole-map
run where those windows cover more cells than the map: on these 256² maps from 3 tiles on), blended into the jump by
a linear ramp {BLEND:g} tiles wide each side of their edges (symmetric, so physics' mean weight over the map is the
tiles' share). "steps at tile borders": the mean |step| of the gated change across tile borders over the mean
elsewhere, divided by the same ratio of the physics' change (1: no seams). "oracle": the relative error of the change
when instead the tiles of largest true error are redone the same way, the best any trust map could do at that share.
Rank correlation: Spearman, trust against the true per-tile error of the single call, averaged over maps. "the trust
map's reference": the relative error of the change of that mean of compositions or the physics (a
diagnostic).

{table(results['horizons'], FALLBACK_COLUMNS)}

## Gate on settled terrain

The held-out maps after {SETTLE_STEPS} physics steps (mean |change| of one more step: {results['gate'][0]['settled_step_change']:.1e}
of the map's scale), each with a fresh cliff (its north-east quarter's northern
half raised by the map's height scale); a tile changes when its mean |change| over the period is at
least the gate's tolerance times the map's height scale (standard deviation).

{table(results['gate'], gate_columns)}

## Seams

A 1024² world (a held-out generated map, bicubic x4, 30 m cells) eroded to maturity (K = 10) with the network
run as 4 x 4 windows (cores of 256 cells, margin {MARGIN}): steps across window borders over steps inside, heights
{seam['edge_step_ratio_heights']:.3f} (the same rows of one whole-map run: {seam['edge_step_ratio_heights_control']:.3f}),
change {seam['edge_step_ratio_change']:.3f} (whole run {seam['edge_step_ratio_change_control']:.3f}); largest
difference from the whole-map run {seam['max_tiled_vs_whole_m']:.2e} m.

## Pictures (looked at)

![physics vs surrogate vs gated](physics_surrogate_gated.png)

![slope histograms](slope_histograms.png)

![training](training_curve.png)
"""
    path.write_text(text)


def write_card(path: Path, results: dict[str, Any], cfg: dict[str, Any], surrogate: ErosionSurrogate,
               lines: list[str], corpus: list[str]) -> None:
    """models/erosion_surrogate.md: what the weights are, what they learned from, how, and how well."""
    train, unet, process = cfg["maps"]["train"], cfg["unet"], surrogate.config.process
    params = sum(p.numel() for p in surrogate.net.parameters())
    mature = [r for r in results["horizons"] if r["K"] == 10]
    text = f"""# erosion_surrogate.safetensors

The learned erosion step (`backend/models/erosion_surrogate.py`): K steps of the mature erosion stage's process
(fastscapelib stream power, K_sp {process['incision']:g}, m {process['area_exponent']:g}, n 1, backward-Euler hillslope
diffusion {process['diffusion']:g} m² per step) at {surrogate.config.cell_size:g} m cells in one call,
K learned on the ladder {list(surrogate.config.horizons)}, used at {list(surrogate.horizons)} (benchmarks/bench_surrogate.py: at least 3x faster than
physics). sha256 `{surrogate.sha256}`.

- Network: the shared U-Net (`backend/networks/unet.py`) without normalisation layers, model channels
  {unet['model_channels']}, levels {unet['channel_mult']}, {unet['num_res_blocks']} residual block per level, no attention,
  K as a slider; the map folded {cfg['fold']} x {cfg['fold']} into channels; {params} parameters. Inputs: heights / the
  map's standard deviation, log10 upstream area / 4, one implicit K-long step (stream power on the fixed flow
  graph, then hillslope diffusion of K D),
  the border; output: what that step misses, times the standard deviation.
- Data: {train['corpus']} corpus maps of the training split ({', '.join(f"`{Path(d).name}`" for d in corpus)}: the project's
  simulated corpus, 256² at 30 m) and {train['generated']} maps the shipped diffusion models made with the erosion stage off
  (seeds {cfg['generated_seed']['train']}+), each run {cfg['rollout_steps']} physics steps; examples from steps
  {cfg['starts']} for every K. Held out: the corpus's held-out split and seeds {cfg['generated_seed']['heldout']}+.
- Training: `python -m backend.training.train_erosion_surrogate configs/erosion_surrogate.json --corpus ...`,
  on this project's 2-core CPU at 1 thread in the background, Adam, lr {cfg['lr']} (cosine over {cfg['steps']}
  steps), batches of {cfg['batch']} crops of {cfg['crop']}², dihedral flips, noise up to {cfg['noise']} on the heights;
  loss: the relative error of the change per crop plus {cfg['gradient_loss']:g} x the same ratio for its gradients
  (they decide where the result drains) and {cfg['mean_loss']:g} x for its mean (the map's level: its hypsometry).
  Log: `reports/erosion_surrogate/training_log.csv`.
- Gate: log10 mean |change| per step of a 32² tile ~ log10 of its mean |change| in one implicit physics step
  + bias {surrogate.config.gate.bias:.3f} (median over {cfg['gate_maps']} training maps' rollouts), margin
  {surrogate.config.gate.margin:.3f} (the 98th percentile of underestimates); fallback share
  {surrogate.config.fallback_share}.
- Held-out figures at the mature stage (K = 10): relative error of the change
  {', '.join(f"{r['source']} {r['rel_error']:.3f}" for r in mature)}; channel IoU
  {', '.join(f"{r['source']} {r['channel_iou']:.3f}" for r in mature)}. Full report:
  [reports/erosion_surrogate](../reports/erosion_surrogate/README.md).

{chr(10).join(lines)}
"""
    path.write_text(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "models" / "erosion_surrogate.safetensors"))
    ap.add_argument("--corpus", nargs="+", default=[str(ROOT / "corpus" / name) for name in ("v2a", "v2b", "v2c")])
    ap.add_argument("--config", default=str(ROOT / "configs" / "erosion_surrogate.json"))
    ap.add_argument("--out", default=str(ROOT / "reports" / "erosion_surrogate"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = json.loads(Path(args.config).read_text())
    surrogate = ErosionSurrogate.load(args.model)
    held = cfg["maps"]["heldout"]
    maps = {"corpus": corpus_maps(args.corpus, "heldout", held["corpus"]),
            "generated": generated_maps(held["generated"], cfg["generated_seed"]["heldout"])}
    print(f"{len(maps['corpus'])} corpus and {len(maps['generated'])} generated held-out maps", flush=True)
    every_k = replace(surrogate, config=replace(surrogate.config, shipped=None))  # every learned horizon
    rows = per_horizon(maps, every_k)
    print("per-horizon figures done", flush=True)
    every = maps["corpus"] + maps["generated"]
    gate = gate_on_settled(every, every_k)
    print("gate done", flush=True)
    seam = seams(zoom(maps["generated"][0], 4, order=3), surrogate)
    slope_histograms(every, every_k, out / "slope_histograms.png")
    pictures([("generated 0", maps["generated"][0]), ("generated 1", maps["generated"][1]),
              ("corpus 0", maps["corpus"][0])], surrogate, out)
    log = Path(cfg["log"]) if Path(cfg["log"]).is_absolute() else ROOT / cfg["log"]
    if log.exists():
        training_curve(log, out / "training_curve.png")
    results = {"horizons": rows, "gate": gate, "seams": seam, "model_sha256": surrogate.sha256,
               "shipped": list(surrogate.horizons), "process": surrogate.config.process,
               "fallback_share": surrogate.config.fallback_share, "learned": list(surrogate.config.horizons)}
    (out / "results.json").write_text(json.dumps(results, indent=1))
    write_readme(out / "README.md", results, verdicts(rows, gate, seam), cfg)
    if Path(args.model).resolve() == (ROOT / "models" / "erosion_surrogate.safetensors").resolve():
        write_card(ROOT / "models" / "erosion_surrogate.md", results, cfg, surrogate, verdicts(rows, gate, seam),
                   args.corpus)
    print("\n".join(verdicts(rows, gate, seam)))


if __name__ == "__main__":
    main()
