"""Regenerate reports/terrain_simulation/: realism metrics of every style vs fBm vs real DEMs.

    python reports/make_terrain_report.py [--maps 3] [--size 256] [--cell-size 30]

Real samples are the two DEMs shipped with matplotlib; their cell sizes come from the files'
own coordinates (degrees converted to metres at the sample's latitude).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # allow `python reports/make_terrain_report.py` from anywhere
    sys.path.insert(0, str(ROOT))

from backend.metrics.realism import FAMILIES, contact_sheet, set_distance, set_means, terrain_features  # noqa: E402
from backend.simulation.spectral_noise import fbm  # noqa: E402
from backend.simulation.styles import STYLE_NAMES, simulate_with_params  # noqa: E402
from backend.terrain import Heightfield  # noqa: E402

OUT = ROOT / "reports" / "terrain_simulation"
M_PER_DEG = 111_320.0


def real_samples() -> list[tuple[str, Heightfield]]:
    """matplotlib's Jacksboro fault DEM (3 arc-second) and the topobathy grid (2 arc-minute)."""
    import matplotlib.cbook as cbook

    d = cbook.get_sample_data("jacksboro_fault_dem.npz")
    lat = 0.5 * (float(d["ymin"]) + float(d["ymax"]))
    cs = math.sqrt(float(d["dx"]) * M_PER_DEG * math.cos(math.radians(lat)) * float(d["dy"]) * M_PER_DEG)
    jacks = Heightfield(d["elevation"].astype(np.float32), cs, style="real")
    t = cbook.get_sample_data("topobathy.npz")
    lon, la = np.asarray(t["longitude"], np.float64), np.asarray(t["latitude"], np.float64)
    dx = float(np.diff(lon).mean()) * M_PER_DEG * math.cos(math.radians(float(la.mean())))
    dy = float(np.abs(np.diff(la)).mean()) * M_PER_DEG
    topo = Heightfield(np.asarray(t["topo"], np.float32), math.sqrt(dx * dy), style="real")
    return [("jacksboro_fault_dem", jacks), ("topobathy", topo)]


def fbm_samples(n: int, size: int, cell_size: float) -> list[Heightfield]:
    """Plain fBm (beta 2, i.e. P(k) ~ k^-3), relief 1000 m: the no-erosion baseline."""
    rng = np.random.default_rng(1234)
    return [Heightfield((fbm(size, rng) * 1000.0).astype(np.float32), cell_size, style="fbm") for _ in range(n)]


def fmt(x: float) -> str:
    return f"{x:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--maps", type=int, default=3, help="maps per style")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--cell-size", type=float, default=30.0)
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)

    real = real_samples()
    real_feats = [terrain_features(hf) for _, hf in real]
    contact_sheet([hf for _, hf in real], OUT / "real_samples.png",
                  [f"{name} ({hf.cell_size:.0f} m)" for name, hf in real], cols=2)
    sets: dict[str, list] = {}
    timings: dict[str, float] = {}
    fb = fbm_samples(max(args.maps, 4), args.size, args.cell_size)
    sets["fbm (no erosion)"] = [terrain_features(hf) for hf in fb]
    contact_sheet(fb, OUT / "fbm.png", [f"fbm {i}" for i in range(len(fb))])
    all_sim = []
    for style in STYLE_NAMES:
        hfs, t0 = [], time.perf_counter()
        for seed in range(args.maps):
            hf, _ = simulate_with_params(style, seed, args.size, args.cell_size)
            hfs.append(hf)
        timings[style] = (time.perf_counter() - t0) / args.maps
        contact_sheet(hfs, OUT / f"style_{style}.png", [f"{style} seed {s}" for s in range(args.maps)])
        sets[style] = [terrain_features(hf) for hf in hfs]
        all_sim += sets[style]
        print(f"{style}: {timings[style]:.1f} s/map", flush=True)
    sets["all styles (eroded corpus)"] = all_sim

    lines = [
        "# Terrain simulation: realism metrics",
        "",
        f"Regenerate: `python reports/make_terrain_report.py --maps {args.maps} --size {args.size} "
        f"--cell-size {args.cell_size:g}` (metrics: `backend/metrics/realism.py`).",
        "",
        f"Simulated: {args.maps} maps per style, {args.size}x{args.size} cells at {args.cell_size:g} m. "
        f"fBm baseline: {len(fb)} maps, same grid, 1000 m relief. Real: "
        + ", ".join(f"{n} {hf.shape[1]}x{hf.shape[0]} @ {hf.cell_size:.0f} m" for n, hf in real) + ".",
        "",
        "## Distance to the real samples (lower = closer; per family, see FEATURE_SCALES)",
        "",
        "| set | " + " | ".join(FAMILIES) + " | total |",
        "|---|" + "---|" * (len(FAMILIES) + 1),
    ]
    dist = {name: set_distance(f, real_feats) for name, f in sets.items()}
    for name, d in dist.items():
        lines.append(f"| {name} | " + " | ".join(fmt(d[f]) for f in FAMILIES) + f" | {fmt(d['total'])} |")
    eroded, noise = dist["all styles (eroded corpus)"], dist["fbm (no erosion)"]
    verdict = {f: eroded[f] < noise[f] for f in ("drainage", "pits")}
    lines += ["", "Required outcome (eroded corpus closer to real than fBm): "
              + ", ".join(f"{f}: {'yes' if ok else 'NO'} ({fmt(eroded[f])} vs {fmt(noise[f])})"
                          for f, ok in verdict.items()), ""]
    lines += ["## Feature means per set", ""]
    named = {**{n: [f] for n, f in zip([n for n, _ in real], real_feats)}, **sets}
    for fam in FAMILIES:
        keys = list(set_means(real_feats)[fam])
        lines += [f"### {fam}", "", "| set | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
        for name, feats in named.items():
            m = set_means(feats)[fam]
            lines.append(f"| {name} | " + " | ".join(fmt(m[k]) for k in keys) + " |")
        lines.append("")
    lines += ["## Contact sheets (hillshade, sun from the north-west, no vertical exaggeration)", "",
              "![real](real_samples.png)", "", "![fbm](fbm.png)", ""]
    for style in STYLE_NAMES:
        lines += [f"### {style} ({timings[style]:.1f} s per map on this CPU)", "", f"![{style}](style_{style}.png)", ""]
    (OUT / "README.md").write_text("\n".join(lines))
    print("\n".join(lines[:len(dist) + 12]))


if __name__ == "__main__":
    main()
