"""Regenerate reports/profiles/ and models/profile_1d.md: do the curve guides' profiles look like real ones?

    python reports/make_profile_report.py [--model models/profile_1d.safetensors] [--corpus DIR ...]

Every held-out corpus profile (rivers, ridges, cliffs of the held-out maps, extracted with the model's own
settings) gets a generated counterpart with the same ends, length, relief and extent (one seed for all),
and the naive baseline: the straight line between its ends. Rivers are also sampled without the
monotone projection to measure how often the model alone runs downhill. Statistics, per profile, on
the deviation from the chord in units of the map's relief: amplitude (std), mean (signed), river
concavity (mean depth below the chord over the drop), roughness (std of sample-to-sample steps),
undulation (turning points), spectral slope (power-law exponent of the deviation's spectrum over
2-16 cycles per profile), the share of steps going uphill from the higher end, and monotonicity (none).
Then the three kinds of curve on one learned terrain, through the curve job's own code path.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import scipy.ndimage as ndi
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # allow `python reports/make_profile_report.py` from anywhere
    sys.path.insert(0, str(ROOT))

from backend.data.elevation_profiles import KINDS, ProfileSet, ProfileSettings, chord, load_profiles  # noqa: E402
from backend.editing import seam_ratio  # noqa: E402
from backend.editing.curves import Curve, apply_curve  # noqa: E402
from backend.generators import DiffusionGenerator, GenerateRequest  # noqa: E402
from backend.generators.curve_profiles import sample_profiles  # noqa: E402
from backend.metrics.realism import hillshade  # noqa: E402
from backend.models.inference import read_metadata  # noqa: E402
from backend.models.profile import ProfileModel  # noqa: E402
from backend.models.shipped import MODELS_DIR  # noqa: E402
from backend.models.shipped import PROFILE_FILE  # noqa: E402
from benchmarks.hardware import cpu_model  # noqa: E402

OUT = ROOT / "reports" / "profiles"
CYCLES = (2, 16)  # spectral fit range, cycles per profile
STATS = ("amplitude", "mean", "concavity", "roughness", "undulation", "spectral_slope", "uphill_share", "monotone")


def deviation(z: np.ndarray, relief: np.ndarray) -> np.ndarray:
    """(N, L) metres -> deviation from the ends' chord in units of relief."""
    return (z - chord(z[:, 0], z[:, -1], z.shape[1])) / relief[:, None]


def spectrum(dev: np.ndarray) -> np.ndarray:
    """(N, L) -> (N, L // 2 + 1) power of the deviation per cycles-per-profile."""
    return np.abs(np.fft.rfft(dev, axis=1)) ** 2


def spectral_slope(power: np.ndarray) -> np.ndarray:
    """(N, K) power -> (N,) beta of P ~ k^-beta over CYCLES (NaN for a flat line)."""
    k = np.arange(CYCLES[0], CYCLES[1] + 1)
    logp = np.log(np.maximum(power[:, k], 1e-30))
    slope = np.polyfit(np.log(k), logp.T, 1)[0]
    return np.where(power[:, k].max(axis=1) > 1e-24, -slope, np.nan)


def statistics(z: np.ndarray, relief: np.ndarray) -> dict[str, np.ndarray]:
    """Per profile (N,) statistics of (N, L) metres; see the module docstring."""
    dev = deviation(z, relief)
    downstream = np.where((z[:, 0] >= z[:, -1])[:, None], z, z[:, ::-1])  # read from the higher end
    drop = downstream[:, 0] - downstream[:, -1]
    steps = np.diff(dev, axis=1)
    turns = (np.diff(np.sign(steps), axis=1) != 0).sum(axis=1)
    below = -deviation(downstream, relief).mean(axis=1) * relief
    return {"amplitude": dev.std(axis=1), "mean": dev.mean(axis=1),
            "concavity": np.where(drop > 0, below / np.maximum(drop, 1e-9), np.nan),
            "roughness": steps.std(axis=1), "undulation": turns.astype(np.float64),
            "spectral_slope": spectral_slope(spectrum(dev)),
            "uphill_share": (np.diff(downstream, axis=1) > 0).mean(axis=1),
            "monotone": (np.diff(downstream, axis=1) <= 0).all(axis=1).astype(np.float64)}


def summary(values: np.ndarray) -> tuple[float, float]:
    v = values[np.isfinite(values)]
    return (float(v.mean()), float(v.std())) if len(v) else (float("nan"), float("nan"))


def fmt(mean: float, std: float | None = None) -> str:
    if not np.isfinite(mean):
        return "–"
    return f"{mean:.3f}" if std is None else f"{mean:.3f} ± {std:.3f}"


def plot(sets: dict[str, dict[str, dict]], path: Path) -> None:
    """Per kind: example profiles (held-out, generated, line), mean spectra, histogram of the main statistic."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    main_stat = {"river": "concavity", "ridge": "amplitude", "cliff": "amplitude"}
    fig, axes = plt.subplots(len(KINDS), 3, figsize=(15, 4 * len(KINDS)), squeeze=False)
    colours = plt.get_cmap("tab10")
    for row, kind in enumerate(KINDS):
        sets_k = sets[kind]
        held, gen = sets_k["held-out"], sets_k["generated"]
        ax = axes[row, 0]
        t = np.linspace(0, 1, held["z"].shape[1])
        for j, i in enumerate(np.linspace(0, len(held["z"]) - 1, 4).astype(int)):
            unit = held["relief"][i]
            base = held["z"][i, -1]
            ax.plot(t, (held["z"][i] - base) / unit, color=colours(j), lw=1.6, label="held-out" if j == 0 else None)
            ax.plot(t, (gen["z"][i] - base) / unit, color=colours(j), lw=1.2, ls="--",
                    label="generated" if j == 0 else None)
            ax.plot(t, (chord(held["z"][i, 0], held["z"][i, -1], len(t)) - base) / unit, color=colours(j),
                    lw=0.8, ls=":", label="straight line" if j == 0 else None)
        ax.set_title(f"{kind}: held-out, generated (same ends), line", fontsize=10)
        ax.set_xlabel("position along the line")
        ax.set_ylabel("height above the end / map relief")
        ax.legend(fontsize=8)
        ax = axes[row, 1]
        k = np.arange(1, held["z"].shape[1] // 2 + 1)
        for name, style in (("held-out", "-"), ("generated", "--"), ("generated, raw", ":")):
            if name in sets_k:
                ax.loglog(k, spectrum(deviation(sets_k[name]["z"], sets_k[name]["relief"]))[:, 1:].mean(0),
                          ls=style, label=name)
        ax.axvspan(*CYCLES, color="0.9")
        ax.set_title(f"{kind}: mean power spectrum of the deviation", fontsize=10)
        ax.set_xlabel("cycles per profile")
        ax.legend(fontsize=8)
        ax = axes[row, 2]
        stat = main_stat[kind]
        values = [sets_k[n]["stats"][stat] for n in ("held-out", "generated")]
        bins = np.histogram_bin_edges(np.concatenate([v[np.isfinite(v)] for v in values]), 30)
        for name, v in zip(("held-out", "generated"), values):
            ax.hist(v[np.isfinite(v)], bins, alpha=0.5, label=name)
        ax.axvline(0, color="k", ls=":", label="straight line")
        ax.set_title(f"{kind}: {stat}", fontsize=10)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def curve_examples(model: ProfileModel, path: Path) -> list[str]:
    """The three kinds on one learned terrain (the shipped terrain models): hillshades and heights along the
    curve before and after, and per kind the edit's time, its seam ratio and that outside the band is unchanged."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    learned = DiffusionGenerator("cpu")
    res = 128
    size = learned.native_size_m(res)  # the terrain at the models' own cell size
    cell = size / (res - 1)
    request = GenerateRequest(style_weights={"alpine": 1.0}, resolution=res, size_m=size, height_m=400.0, seed=2,
                              generator="diffusion")
    before = learned.generate(request, lambda *args: None).heights
    points = np.array([[64.0, 20.0], [58.0, 64.0], [70.0, 108.0]])
    fig, axes = plt.subplots(2, 1 + len(KINDS), figsize=(5 * (1 + len(KINDS)), 9))
    axes[0, 0].imshow(hillshade(before, cell), cmap="gray")
    axes[0, 0].set_title("learned alpine terrain, 2 km, 400 m", fontsize=10)
    axes[1, 0].axis("off")
    rows = ["| kind | edit time | seam ratio | cells outside the band changed |", "|---|---|---|---|"]
    for i, kind in enumerate(KINDS):
        curve = Curve(kind, points, width=16.0, strength=0.8)
        t0 = time.perf_counter()
        edit, profile = apply_curve(learned.base, learned.superres, model, before, curve, {"alpine": 1.0}, {}, 2.0,
                                    cell, seed=1)
        took = time.perf_counter() - t0
        r0, c0, r1, c1 = edit.window
        after = before.copy()
        after[r0:r1, c0:c1] = edit.heights
        outside = int((edit.heights != before[r0:r1, c0:c1])[edit.weight == 0].sum())
        rows.append(f"| {kind} | {took:.2f} s | {seam_ratio(edit.heights, edit.weight):.2f} | {outside} |")
        ax = axes[0, i + 1]
        ax.imshow(hillshade(after, cell), cmap="gray")
        ax.plot(points[:, 1], points[:, 0], "r-", lw=0.6)
        ax.set_title(f"{kind}: width 16 cells, strength 0.8", fontsize=10)
        samples = curve.samples(len(profile)).T
        ax = axes[1, i + 1]
        ax.plot(profile, label="profile (model, ends pinned)")
        for name, h in (("ground before", before), ("ground after", after)):
            ax.plot(ndi.map_coordinates(h.astype(np.float64), samples, order=1), label=name)
        ax.set_xlabel("sample along the curve")
        ax.set_ylabel("metres")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=70)
    plt.close(fig)
    return rows


def model_card(model_path: Path, meta: dict, table: list[str]) -> None:
    run = meta["run"]
    unet = {k: v for k, v in meta["unet"].items() if k in ("dims", "model_channels", "channel_mult", "num_res_blocks",
                                                         "attn_levels", "n_styles", "n_sliders")}
    counts = ", ".join(f"{n} {k}s" for k, n in meta["profiles_per_kind"].items())
    lines = [
        "# Curve-guide profile model (1D)", "",
        f"File: `{model_path.name}` (safetensors, EMA weights, config in the metadata). Used by the `curve` job "
        "(docs/PROTOCOL.md) to fill in the height along a ridge, river or cliff line between its pinned ends.", "",
        "| | |", "|---|---|",
        f"| network | the shared U-Net at dims=1, {run['parameters']:,} parameters: {json.dumps(unet)} |",
        f"| input | {meta['length']} samples: deviation from the chord between the ends / (map relief x per-kind "
        f"scale {json.dumps({k: round(v, 4) for k, v in meta['deviation_scale'].items()})}) |",
        f"| conditioning | kind one-hot ({', '.join(meta['profile_kinds'])}), sliders "
        f"{', '.join(meta['slider_names'])} |",
        f"| data | corpus {', '.join(run['corpus'])}: {run['train_maps']} simulated maps (train split) -> {counts} "
        f"(backend/data/elevation_profiles.py), {run['train_items']:,} items with kinds balanced and ridges/cliffs reversed |",
        f"| extraction | {json.dumps(meta['extraction'])} |",
        f"| training | {run['steps_done']} steps, batch {run['batch_size']}, EDM loss, config `{run['config_file']}` |",
        f"| time | {run.get('train_seconds_total', float('nan')) / 60:.1f} min of training steps; before them "
        f"the extraction, {meta['extract_s_per_map']:.1f} s per map in the report's run (cached in the run folder) |",
        f"| hardware | {run['hardware']}, torch {run['torch']} |",
        f"| final loss (EDM, last 200 steps) | {run.get('final_loss_mean_last_200_steps', float('nan')):.4f} |",
        "", "Reproduce: `python -m backend.training.train_terrain configs/profile_1d.json` on corpus v2 (the corpus "
        "lines of `scripts/train_models.sh` at revision d49fce2).", "",
        "## Measured (reports/profiles/README.md)", "", *table, ""]
    model_path.with_suffix(".md").write_text("\n".join(lines))


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=MODELS_DIR / PROFILE_FILE)
    ap.add_argument("--corpus", nargs="*", help="corpus folders (default: the model's training corpus)")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--seed", type=int, default=0)
    return ap.parse_args()


def generate_sets(model: ProfileModel, held: ProfileSet, seed: int) -> tuple[dict[str, dict[str, dict]], dict[str, float]]:
    """Per kind: the held-out profiles, generated twins (same ends, length, relief, extent) and straight lines,
    each with its statistics; and the seconds per generated profile."""
    sets: dict[str, dict[str, dict]] = {}
    timing = {}
    for kind in KINDS:
        idx = held.of_kind(kind)
        z = held.heights[idx].astype(np.float64)
        relief = held.relief_m[idx].astype(np.float64)
        cond = (z[:, [0, -1]], held.length_m[idx], relief, held.extent_m[idx])
        t1 = time.perf_counter()
        gen = sample_profiles(model, kind, *cond, seed=seed)
        timing[kind] = (time.perf_counter() - t1) / max(1, len(idx))
        sets[kind] = {"held-out": {"z": z}, "generated": {"z": gen},
                      "straight line": {"z": chord(z[:, 0], z[:, -1], z.shape[1])}}
        if kind == "river":
            sets[kind]["generated, raw"] = {"z": sample_profiles(model, kind, *cond, seed=seed, monotone=False)}
        for entry in sets[kind].values():
            entry["relief"] = relief
            entry["stats"] = statistics(entry["z"], relief)

    return sets, timing


def comparison_table(sets: dict[str, dict[str, dict]]) -> tuple[list[str], int, int, dict[str, tuple[str, float]]]:
    """The statistics table; on how many statistics the generated profiles beat the straight line (of how
    many), and each kind's largest gap."""
    table = ["| kind | statistic | held-out | generated | straight line | generated distance | line distance |",
             "|---|---|---|---|---|---|---|"]
    closer, compared, worst = 0, 0, {}
    for kind in KINDS:
        names = [n for n in ("generated, raw",) if n in sets[kind]]
        for stat in STATS:
            if stat == "concavity" and kind != "river":
                continue
            h_mean, h_std = summary(sets[kind]["held-out"]["stats"][stat])
            g_mean, g_std = summary(sets[kind]["generated"]["stats"][stat])
            l_mean, _ = summary(sets[kind]["straight line"]["stats"][stat])
            dist = lambda m: abs(m - h_mean) / h_std if np.isfinite(m) and h_std > 0 else float("nan")  # noqa: E731
            row = f"| {kind} | {stat} | {fmt(h_mean, h_std)} | {fmt(g_mean, g_std)} | {fmt(l_mean)} | " \
                  f"{fmt(dist(g_mean))} | {fmt(dist(l_mean))} |"
            table.append(row)
            if np.isfinite(dist(g_mean)) and np.isfinite(dist(l_mean)):
                compared += 1
                closer += dist(g_mean) < dist(l_mean)
            if np.isfinite(dist(g_mean)) and dist(g_mean) > worst.get(kind, ("", -1.0))[1]:
                worst[kind] = (stat, dist(g_mean))
        for name in names:
            for stat in ("uphill_share", "monotone"):
                raw = sets[kind][name]["stats"][stat].mean()
                table.append(f"| {kind} | {stat} without the projection | | {raw:.3f} | | | |")
    return table, closer, compared, worst


def single_profile_seconds(model: ProfileModel) -> list[float]:
    single = []
    for seed in range(5):  # what one curve job pays: one river profile, projection included
        t1 = time.perf_counter()
        sample_profiles(model, "river", np.array([[300.0, 100.0]]), np.array([1500.0]), np.array([800.0]),
                        np.array([7650.0]), seed=seed)
        single.append(time.perf_counter() - t1)
    return single


def per_style_table(held: ProfileSet) -> list[str]:
    """Held-out profiles per kind and style of map."""
    styles = [n for i, n in enumerate(held.style_names) if (held.style == i).any()]
    by_style = ["| kind | " + " | ".join(styles) + " |", "|---|" + "---|" * len(styles)]
    for kind in KINDS:
        idx = held.of_kind(kind)
        by_style.append(f"| {kind} | " + " | ".join(str(int((held.style[idx] == held.style_names.index(n)).sum()))
                                                   for n in styles) + " |")
    return by_style


def main() -> None:
    args = parse_args()
    model = ProfileModel.load(args.model)
    meta = model.meta
    corpus = args.corpus or [str(ROOT / c) for c in meta["run"]["corpus"]]
    t0 = time.perf_counter()
    held = load_profiles(corpus, "heldout", ProfileSettings(**meta["extraction"]))
    extract_s = time.perf_counter() - t0
    sets, timing = generate_sets(model, held, args.seed)
    table, closer, compared, worst = comparison_table(sets)
    single = single_profile_seconds(model)
    counts = {k: len(held.of_kind(k)) for k in KINDS}
    by_style = per_style_table(held)
    png = args.out / "profiles.png"
    plot(sets, png)
    edits = curve_examples(model, args.out / "curves.png")
    lines = [
        "# Curve-guide profiles: generated vs held-out vs a straight line", "",
        f"Regenerate: `python reports/make_profile_report.py` ({time.perf_counter() - t0:.0f} s here; "
        f"extraction {extract_s:.0f} s).", "",
        f"Model `{args.model.relative_to(ROOT) if args.model.is_relative_to(ROOT) else args.model}`, held-out "
        f"profiles of the corpus's held-out maps: {', '.join(f'{n} {k}s' for k, n in counts.items())}. Each "
        "generated profile has the ends, length, relief and extent of its held-out twin (seed "
        f"{args.seed}); the straight line joins the same ends. Distances: |mean - held-out mean| / held-out std "
        "(0 = the same on average). Statistics are on the deviation from the chord in units of the map's relief; "
        "see the script's docstring.", "",
        *table, "",
        f"The generated profiles are closer to the held-out ones than the straight line on {closer} of {compared} "
        "statistics both can be compared on; their largest gaps: "
        + ", ".join(f"{kind} {stat} ({d:.2f} held-out stds)" for kind, (stat, d) in worst.items()) + ".", "",
        f"Hardware: {cpu_model()}, torch threads {torch.get_num_threads()}, torch {torch.__version__}.", "",
        "Held-out profiles per style of map (cliff tops are mesa rims in canyon_mesa, the tops of steep "
        "trough and valley walls elsewhere):", "", *by_style, "",
        f"Sampling cost (16 dpmpp_2m steps, CPU): {1000 * np.median(single):.0f} ms for one profile (what a curve "
        f"job pays), {1000 * np.mean(list(timing.values())):.1f} ms per profile in the batches above.", "",
        "Rivers are made monotone by projecting every denoised estimate onto non-increasing profiles "
        "(isotonic regression, `MonotoneProjection` in backend/diffusion/guidance.py) and once more in float64 "
        "metres; the rows 'without the projection' are the model alone.", "",
        "![profiles](profiles.png)", "",
        "## On a terrain", "",
        "The `curve` job's path (`backend/editing/curves.py`) with this model and the shipped terrain models, "
        "the same curve as a ridge, a river and a cliff (seam ratio: mean step across the band's rim over the "
        "mean step elsewhere, 1 = no seam):", "", *edits, "", "![curves](curves.png)", ""]
    (args.out / "README.md").write_text("\n".join(lines))
    if args.model.resolve() == (MODELS_DIR / PROFILE_FILE).resolve():
        model_card(args.model, {**meta, "unet": read_metadata(args.model)["denoiser"]["unet"],
                                "extract_s_per_map": extract_s / max(1, len(set(held.map_index.tolist())))}, table)
    print("\n".join(table))


if __name__ == "__main__":
    main()
