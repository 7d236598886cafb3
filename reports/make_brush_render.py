"""The README's brush pictures: learned terrain sculpted through the add-on, before and after, rendered by
Blender and as hillshades.

    python reports/make_brush_render.py [--out docs/images/brushes_render.png]
                                        [--hillshade docs/images/brushes_hillshade.png]

Starts a backend with the shipped models, then in headless Blender (``backend/render/sculpt.py``) runs the
Generate operator (alpine, 512² over 4 km: 7.8 m cells, an artist's world) and, as an artist's mouse would send
them, a ridge across the north, a valley winding through the south with a River curve guide along it, a
regenerated patch in the west and a patch of desert dunes painted in the east. Both terrains are rendered with
Workbench (``backend/render/preview.py``, camera in the south) and hillshaded, each pair side by side. Prints how
far each edit moved the ground and that nothing outside the edits changed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # allow `python reports/make_brush_render.py` from anywhere
    sys.path.insert(0, str(ROOT))

from backend.editing.brushes import Stroke, footprint, rounded  # noqa: E402
from backend.headless import LocalBackend, render_preview  # noqa: E402
from backend.metrics.realism import hillshade  # noqa: E402
from backend.terrain import Heightfield  # noqa: E402

N, SIZE_M = 512, 4000.0
VALLEY = [[400.0, 40.0], [350.0, 150.0], [385.0, 260.0], [330.0, 380.0], [345.0, 480.0]]
STROKES = [  # rows north to south, columns west to east, in cells of the 512² grid
    # a ridge and a valley are shaped over the inner half of their circles (the rest blends them in): 36 and 34 cells
    {"kind": "ridge", "points": [[130.0, 60.0, 1.0], [105.0, 180.0, 1.0], [135.0, 300.0, 1.0], [115.0, 430.0, 1.0]],
     "radius": 72.0, "strength": 0.8, "seed": 1},
    {"kind": "valley", "points": [[r, c, 1.0] for r, c in VALLEY], "radius": 68.0, "strength": 0.8, "seed": 2},
    # the River drawn along the valley's floor as the brush carved it (its corners rounded), as an artist's curve is
    {"curve": "river", "points": rounded(np.c_[VALLEY, np.ones(len(VALLEY))], 68.0)[:, :2].tolist(), "width": 20.0,
     "strength": 0.6, "seed": 3},
    {"kind": "regenerate", "points": [[240.0, 70.0, 1.0], [265.0, 150.0, 1.0]], "radius": 40.0, "strength": 1.0,
     "seed": 4},
    {"kind": "style_paint", "points": [[220.0, 390.0, 1.0], [290.0, 420.0, 1.0]], "radius": 50.0, "strength": 1.0,
     "seed": 5, "style": "desert_dunes"},
]
LABELS = ("generated (alpine, 4 km)", "sculpted: ridge, valley + river, regenerated, painted dunes")


def reach(stroke: dict) -> tuple[np.ndarray, float]:
    """(cells to the stroke's path over the whole grid, how far the edit reaches)."""
    points = np.array([p[:2] + [1.0] for p in stroke["points"]])
    d = footprint(Stroke("raise", points, 1.0, 1.0), (0, 0, N, N)).distance.numpy()
    return d, stroke["width"] / 2 if "curve" in stroke else stroke["radius"]


def side_by_side(images: list[Image.Image], path: Path) -> None:
    width, height = images[0].size
    sheet = Image.new("RGB", (2 * width, height), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (image, label) in enumerate(zip(images, LABELS)):
        sheet.paste(image, (i * width, 0))
        draw.text((i * width + 10, 10), label, fill=(0, 0, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    print(f"wrote {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "brushes_render.png")
    ap.add_argument("--hillshade", type=Path, default=ROOT / "docs" / "images" / "brushes_hillshade.png")
    args = ap.parse_args()
    cell = SIZE_M / (N - 1)
    generate = {"target": "Terrain", "resolution": N, "size_m": SIZE_M, "height_m": 800.0, "seed": 5,
                "sea_level": 0.0, "generator": "diffusion", "style_preset": "alpine"}  # dry land: the strokes show
    backend = LocalBackend("cpu", startup_timeout=300.0)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            run = subprocess.run([sys.executable, "-m", "backend.render.sculpt", backend.address,
                                  json.dumps({"generate": generate, "strokes": STROKES, "save": tmp})],
                                 cwd=ROOT, capture_output=True, text=True, timeout=1800)
        finally:
            backend.close()
        if run.returncode != 0:
            raise SystemExit(f"sculpting failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}")
        before, after = np.load(Path(tmp) / "before.npy"), np.load(Path(tmp) / "after.npy")
        outside = np.ones(before.shape, dtype=bool)
        for s in STROKES:
            d, r = reach(s)
            outside &= d > r + 1
            change = np.abs(after - before)[d < r / 2].mean()
            print(f"{s.get('curve', s.get('kind')):<12} mean change in its core {change:6.1f} m")
        moved = (after != before) & outside  # a river's band widens where it cuts deep (``curves.band_reach``)
        river = reach(next(s for s in STROKES if s.get("curve") == "river"))[0]
        print(f"outside every drawn band: {int(moved.sum())} of {int(outside.sum())} cells changed, all within "
              f"{float(river[moved].max(initial=0.0)) * cell:.0f} m of the river's curve")
        images = [Image.open(render_preview(Heightfield(h, cell), Path(tmp) / f"{name}.png")).convert("RGB")
                  for name, h in (("before", before), ("after", after))]
    side_by_side(images, args.out)
    side_by_side([Image.fromarray((hillshade(h, cell) * 255).astype(np.uint8)).convert("RGB")
                  for h in (before, after)], args.hillshade)


if __name__ == "__main__":
    main()
