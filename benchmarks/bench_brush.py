"""End-to-end brush latency: a dab sent in Blender -> the edited window written into Blender's mesh.

    python -m benchmarks.bench_brush [--repeats 5] [--kinds raise,smooth,...] [--threads 1] [--models-dir models]

Real parts only: a backend process serving the learned models (default: the shipped ones in models/) and the
add-on in headless Blender (``backend/render/sculpt.py``) on a 512² terrain over 4 km (7.8 m cells, an artist's
world; the edits sample at the models' 30 m cells) made by its Generate operator (the procedural generator: quick
to make, and the brushes' cost does not depend on what the terrain looks like). One dab per job, at the terrain's
centre, with the radius that makes a 128² or 256² window of mesh cells. Per window and kind it
prints the median and p90 of the end-to-end latency and of the first streamed preview, beside two baselines
measured in the same run: the backend round trip without Blender (protocol Client, same params and heights)
and the edit computed in this process with no transport at all (``backend.editing.apply_stroke``). The first
dab of each (window, kind) is a warm-up and not counted. Targets: <= 500 ms end to end for a committed stroke,
<= 50 ms for a live dab in a 128² window.
Writes benchmarks/results/brush_cpu.txt.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from backend.editing import KINDS, LIVE_SETTINGS, EditSettings, Stroke, apply_stroke
from backend.editing.scale import mesh_margin
from backend.generators import DiffusionGenerator
from backend.headless import LocalBackend
from backend.models.shipped import MODELS_DIR
from backend.server.job_kinds import EDIT_THREADS, torch_threads
from benchmarks.hardware import header

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "brush_cpu.txt"
TERRAIN, SIZE_M = 512, 4000.0  # cells per side, metres per side
CELL = SIZE_M / (TERRAIN - 1)
CENTRE = 256.0  # the dab's row and column
TARGET_S = 0.5  # a committed stroke
LIVE_TARGET_S = 0.05  # a live dab at 128² (issue 24): 20 updates a second while the pen moves
SLIDERS = {"roughness": 0.5, "erosion_strength": 0.5, "elevation_range": 0.5, "sea_level": 0.3}  # the panel's defaults


def radius_for(window: int, settings: EditSettings, factor: int, model_cell: float) -> float:
    """The dab radius (cells) whose edit window at CENTRE is window² cells."""
    margin = mesh_margin(settings.margin, CELL, model_cell)
    radius = window / 2 - margin - 1
    r0, c0, r1, c1 = Stroke("raise", np.array([[CENTRE, CENTRE, 1.0]]), radius, 0.5).window(
        (TERRAIN, TERRAIN), margin, factor)
    if (r1 - r0, c1 - c0) != (window, window):
        raise ValueError(f"radius {radius} gives a {r1 - r0}x{c1 - c0} window, not {window}²")
    return radius


def brush_params(kind: str, radius: float, seed: int, commit: bool) -> dict:
    """What the add-on's brush_params sends for one dab with the panel's default style."""
    return {"kind": kind, "stroke": [[CENTRE, CENTRE, 1.0]], "radius": radius, "strength": 0.5, "falloff": "smooth",
            "cell_size": CELL, "sliders": SLIDERS, "seed": seed, "guidance": 2.0, "commit": commit,
            "style_weights": {"alpine": 1.0}}


def stats(seconds: list[float]) -> tuple[float, float]:
    """(median, p90) in milliseconds."""
    ms = np.array(seconds) * 1000
    return float(np.median(ms)), float(np.percentile(ms, 90))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5, help="timed dabs per window and kind (after one warm-up)")
    ap.add_argument("--windows", default="128,256", help="edit window sizes (cells per side)")
    ap.add_argument("--kinds", default=",".join(KINDS), help=f"brush kinds, from {','.join(KINDS)}")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1)),
                    help="torch threads of the backend (its edit jobs run on EDIT_THREADS)")
    ap.add_argument("--models-dir", type=Path, default=MODELS_DIR)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    kinds = [k for k in args.kinds.split(",") if k]
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise SystemExit(f"unknown kinds {unknown}; choose from {','.join(KINDS)}")
    windows = [int(w) for w in args.windows.split(",")]
    torch.set_num_threads(args.threads)
    settings = EditSettings()
    load_before = os.getloadavg()

    backend = LocalBackend("cpu", startup_timeout=300.0, extra_args=["--models-dir", str(args.models_dir)],
                           env=dict(os.environ, OMP_NUM_THREADS=str(args.threads)))
    client = backend.client
    try:
        job = client.submit("generate", {"style": "alpine", "resolution": TERRAIN, "size_m": SIZE_M,
                                         "height_m": 1500.0, "seed": 3, "generator": "procedural"}, target="bench")
        terrain = client.wait_result(job, timeout=300).arrays["heights"]
        models = DiffusionGenerator("cpu", models_dir=args.models_dir)
        factor, model_cell = models.superres.meta["factor"], models.superres.meta["cell_size_m"]
        dabs = [{"window": w, "kind": k, "radius": radius_for(w, settings, factor, model_cell), "seed": i,
                 "strength": 0.5, "points": [[CENTRE, CENTRE, 1.0]]}
                for w in windows for k in kinds for i in range(args.repeats + 1)]

        compute: dict[tuple[int, str], list[float]] = {}
        for dab in dabs:  # the edit alone, in this process (the backend idles meanwhile), on the backend's threads
            stroke = Stroke(dab["kind"], np.array(dab["points"]), dab["radius"], dab["strength"])
            start = time.perf_counter()
            with torch_threads(EDIT_THREADS):
                apply_stroke(models.base, models.superres, terrain, stroke, {"alpine": 1.0}, SLIDERS, 2.0, CELL,
                             dab["seed"], settings)
            compute.setdefault((dab["window"], dab["kind"]), []).append(time.perf_counter() - start)
        del models

        round_trip: dict[tuple[int, str, bool], list[float]] = {}
        for dab in dabs:  # the backend without Blender: the committed dab and a live one (pen still moving)
            for commit in (True, False):
                start = time.perf_counter()
                job = client.submit("brush", brush_params(dab["kind"], dab["radius"], dab["seed"], commit),
                                    target="bench", arrays={"heights": terrain})
                client.wait_result(job, timeout=120)
                round_trip.setdefault((dab["window"], dab["kind"], commit), []).append(time.perf_counter() - start)

        generate = {"target": "Bench Terrain", "resolution": TERRAIN, "size_m": SIZE_M,
                    "height_m": 1500.0, "seed": 3, "generator": "procedural", "style_preset": "alpine"}
        strokes = dabs + [{**dab, "live": True} for dab in dabs]  # the operator's stroke; press-then-release
        run = subprocess.run([sys.executable, "-m", "backend.render.sculpt", backend.address,
                              json.dumps({"generate": generate, "strokes": strokes})], cwd=ROOT, capture_output=True,
                             text=True, timeout=3600, env=dict(os.environ, PYTHONUNBUFFERED="1"))
        if run.returncode != 0:
            raise RuntimeError(f"Blender side failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}")
        blender = json.loads(next(l for l in run.stdout.splitlines() if l.startswith("RESULTS "))[len("RESULTS "):])
    finally:
        backend.close()

    end_to_end: dict[tuple[int, str], list[float]] = {}
    first: dict[tuple[int, str], list[float]] = {}
    live_e2e: dict[tuple[int, str], list[float]] = {}
    for r in blender:
        if r.get("live"):
            live_e2e.setdefault((r["window"], r["kind"]), []).append(r["live_latency_s"])
            continue
        end_to_end.setdefault((r["window"], r["kind"]), []).append(r["latency_s"])
        first.setdefault((r["window"], r["kind"]), []).append(r["first_shown_s"])
    lines = [header("brush latency"),
             f"# load average before {load_before[0]:.1f}, after {os.getloadavg()[0]:.1f} (a shared machine inflates "
             "every column alike: compare the columns)",
             f"# terrain {TERRAIN}² over {SIZE_M / 1000:g} km ({CELL:.2f} m cells; edits sample at the models' "
             f"{model_cell:g} m), one dab at its centre per job, backend with {args.threads} torch thread(s), its "
             f"edit jobs and the in-process baseline with {EDIT_THREADS}, models {args.models_dir}",
             f"# committed dabs: {settings}; live dabs (pen still moving): {LIVE_SETTINGS};",
             f"# {args.repeats} timed dabs per row after one warm-up",
             "# end to end = brush operator called with the stroke -> its committed window written into the Blender",
             "# mesh (timer included); first shown = its first streamed preview in the mesh; live dab = the stroke's",
             "# first dab sent while the pen is down (live settings) -> its window in the mesh, as the modal brush",
             "# paints; round trip = backend alone over the socket; compute = apply_stroke in-process, no transport",
             "",
             f"{'window':>7} {'kind':<12} {'end-to-end ms':>20} {'first shown':>12} {'live dab ms':>20} "
             f"{'round trip ms':>22} {'compute':>8} {'e2e/':>8}",
             f"{'':>7} {'':<12} {'median':>10} {'p90':>9} {'median':>12} {'median':>10} {'p90':>9} "
             f"{'committed':>11} {'live':>10} {'median':>8} {'compute':>8}"]
    met = live_met = 0
    for key in end_to_end:
        e2e, p90 = stats(end_to_end[key][1:])
        live_median, live_p90 = stats(live_e2e[key][1:])
        met += e2e <= TARGET_S * 1000
        live_met += key[0] <= 128 and live_median <= LIVE_TARGET_S * 1000
        committed, live = (stats(round_trip[(*key, c)][1:])[0] for c in (True, False))
        lines.append(f"{key[0]:>6}² {key[1]:<12} {e2e:>10.0f} {p90:>9.0f} {stats(first[key][1:])[0]:>12.0f} "
                     f"{live_median:>10.0f} {live_p90:>9.0f} {committed:>11.0f} {live:>10.0f} "
                     f"{stats(compute[key][1:])[0]:>8.0f} {e2e / stats(compute[key][1:])[0]:>8.2f}")
    small = sum(key[0] <= 128 for key in end_to_end)
    lines += ["", f"target median <= {TARGET_S * 1000:.0f} ms end to end (committed): met by {met} of "
              f"{len(end_to_end)} rows; live dabs <= {LIVE_TARGET_S * 1000:.0f} ms at 128²: met by {live_met} of "
              f"{small}"]
    text = "\n".join(lines) + "\n"
    print(text, end="")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
