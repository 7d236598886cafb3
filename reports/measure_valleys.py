"""Trough or valley? Measures of the README's carved valley (issue 24), and a close-up hillshade of it.

    python reports/measure_valleys.py [--save DIR] [--png out.png] [--json out.json] [NAME=DIR ...]

Sculpts the README picture's valley stroke (``make_brush_render``: alpine, 512² over 4 km, seed 5) with this
checkout through the add-on in headless Blender (``backend.render.sculpt``), keeping before.npy and after.npy in
``--save``, and measures it beside earlier runs (NAME=DIR: another checkout's ``--save``). Per run: the natural-edit
test's roughness and pit density in the stroke's core vs the ring around it, and two measures that tell a trough
from a valley: the variation of its width along it (std / mean of the width at half its depth, cross-sections a
cell apart) and the side channels entering its floor per km (D8 streams draining over SIDE_AREA_M2 that cross from
the walls into the floor, d < FLOOR of the radius), with the same count on the land before the edit for scale;
and how deep it cut along its path and how steep its walls are (the steepest 1 % of them, beside the land's).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import scipy.ndimage as ndi
import torch
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from backend.editing.brushes import SHAPE_SHARE, nearest_on_path, rounded  # noqa: E402
from backend.grids import slope_degrees  # noqa: E402
from backend.headless import LocalBackend  # noqa: E402
from backend.metrics.realism import hillshade  # noqa: E402
from backend.simulation.flow import accumulate, d8_receivers, fill_depressions  # noqa: E402
from reports.make_brush_render import STROKES  # noqa: E402
from test_natural_edits import compare  # noqa: E402

N, SIZE_M = 512, 4000.0
CELL = SIZE_M / (N - 1)
SIDE_AREA_M2 = 2e4  # a side channel drains at least this much
FLOOR = 0.25 * SHAPE_SHARE  # share of the radius: the valley's floor, a quarter of its trough


GENERATE = {"target": "Terrain", "resolution": N, "size_m": SIZE_M, "height_m": 800.0, "seed": 5, "sea_level": 0.0,
            "generator": "diffusion", "style_preset": "alpine"}  # make_brush_render's world
VALLEY = next(s for s in STROKES if s.get("kind") == "valley")


def stroke() -> tuple[np.ndarray, float]:
    """The valley's path as the brush carves it (rounded through its corners) and its radius."""
    return rounded(np.array(VALLEY["points"]), VALLEY["radius"]), VALLEY["radius"]


def sculpt(folder: Path) -> None:
    """The valley stroke made by this checkout in headless Blender: before.npy and after.npy in ``folder``."""
    backend = LocalBackend("cpu", startup_timeout=300.0)
    try:
        run = subprocess.run([sys.executable, "-m", "backend.render.sculpt", backend.address,
                              json.dumps({"generate": GENERATE, "strokes": [VALLEY], "save": str(folder)})],
                             cwd=ROOT, capture_output=True, text=True, timeout=1800)
    finally:
        backend.close()
    if run.returncode != 0:
        raise SystemExit(f"sculpting failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}")


def widths(h: np.ndarray, path: np.ndarray, radius: float) -> np.ndarray:
    """Per cross-section a cell apart along the path: the width (cells) where the ground stands under half way
    from the bed (lowest within 2 cells of the path) to the lower of the two rims (highest ground within the
    radius on each side)."""
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(path[:, :2], axis=0), axis=1))])
    s = np.arange(radius, arc[-1] - radius)  # ends left out: the stroke starts and stops there
    pts = np.stack([np.interp(s, arc, path[:, k]) for k in (0, 1)], 1)
    tangent = np.gradient(pts, axis=0)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    normal = np.stack([-tangent[:, 1], tangent[:, 0]], 1)
    d = np.arange(-radius, radius + 0.5, 0.5)
    cells = pts[:, None] + d[None, :, None] * normal[:, None]
    z = ndi.map_coordinates(h, [cells[..., 0], cells[..., 1]], order=1)
    bed = z[:, np.abs(d) <= 2].min(1)
    rim = np.minimum(z[:, d < 0].max(1), z[:, d > 0].max(1))
    under = z < (bed + 0.5 * (rim - bed))[:, None]
    centre = len(d) // 2
    out = []
    for row in under:  # the connected run under half depth around the path
        left = centre - np.argmin(row[centre::-1]) if not row[centre::-1].all() else 0
        right = centre + np.argmin(row[centre:]) if not row[centre:].all() else len(d)
        out.append((right - left) * 0.5)
    return np.array(out)


def side_channels(h: np.ndarray, dist: np.ndarray, radius: float) -> int:
    """D8 streams (draining over SIDE_AREA_M2) that flow from outside the floor into it."""
    filled = fill_depressions(torch.from_numpy(h)[None], 1e-4)
    receiver = d8_receivers(filled, CELL)[0]
    area = accumulate(receiver, torch.full_like(filled, CELL * CELL))[0].numpy().ravel()
    rec = receiver[0].numpy().ravel()
    flat = dist.ravel()
    floor = flat < FLOOR * radius
    return int(((area >= SIDE_AREA_M2) & ~floor & (flat < radius) & floor[rec]).sum())


def steepest(h: np.ndarray, where: np.ndarray) -> float:
    """Degrees: the steepest 1 % of the cells ``where``."""
    return float(np.percentile(slope_degrees(h, CELL)[where], 99))


def measure(before: np.ndarray, after: np.ndarray) -> dict[str, float]:
    path, radius = stroke()
    dist, _, _ = nearest_on_path(np.c_[path[:, :2], np.zeros(len(path))], (0, 0, N, N))
    stats = compare(before, after, dist, radius)
    km = float(np.linalg.norm(np.diff(path[:, :2], axis=0), axis=1).sum()) * CELL / 1000
    w = widths(after, path, radius)
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(path[:, :2], axis=0), axis=1))])
    along = [np.interp(np.arange(arc[-1]), arc, path[:, k]) for k in (0, 1)]
    cut = ndi.map_coordinates(before - after, along, order=1)
    return {**{k: stats[k] for k in ("rough_in", "rough_around", "pits_in", "pits_around")},
            "width_mean_cells": float(w.mean()), "width_cv": float(w.std() / w.mean()),
            "side_channels_per_km": side_channels(after, dist, radius) / km,
            "land_side_channels_per_km": side_channels(before, dist, radius) / km,
            "deepest_cut_m": float(cut.max()), "mean_cut_m": float(cut.mean()),
            "steepest_wall_deg": steepest(after, (dist > FLOOR * radius) & (dist < radius)),
            "land_steepest_deg": steepest(before, (dist > radius + 6) & (dist < 2 * radius + 6))}


def closeup(h: np.ndarray) -> Image.Image:
    """The valley's part of the map hillshaded, twice the size."""
    crop = h[280:470, :]
    shade = (hillshade(crop, CELL) * 255).astype(np.uint8)
    return Image.fromarray(shade).resize((shade.shape[1] * 2, shade.shape[0] * 2), Image.BICUBIC).convert("RGB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="*", help="NAME=DIR: earlier runs' --save folders to measure beside this one")
    ap.add_argument("--save", type=Path, help="keep this checkout's before.npy and after.npy here")
    ap.add_argument("--png", type=Path, help="close-up hillshades of every run, one under the other")
    ap.add_argument("--json", type=Path, help="write every run's measures here ({name: measures})")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        here = args.save or Path(tmp)
        here.mkdir(parents=True, exist_ok=True)
        sculpt(here)
        images, measured = [], {}
        for name, folder in [("this checkout", here)] + [tuple(r.split("=", 1)) for r in args.runs]:
            before = np.load(Path(folder) / "before.npy").astype(np.float64)
            after = np.load(Path(folder) / "after.npy").astype(np.float64)
            measured[name] = {k: round(v, 4) for k, v in measure(before, after).items()}
            print(f"{name}: " + json.dumps(measured[name]))
            images.append((name, closeup(after)))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(measured, indent=1) + "\n")
    if args.png:
        width, height = images[0][1].size
        sheet = Image.new("RGB", (width, height * len(images)), "white")
        draw = ImageDraw.Draw(sheet)
        for i, (name, image) in enumerate(images):
            sheet.paste(image, (0, i * height))
            draw.text((10, i * height + 10), name, fill=(0, 0, 0))
        sheet.save(args.png)
        print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
