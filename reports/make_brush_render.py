"""The README's brush picture: learned terrain sculpted through the add-on, before and after, rendered by Blender.

    python reports/make_brush_render.py [--out docs/images/brushes_render.png]

Starts a backend with the shipped models, then in headless Blender (``backend/render/sculpt.py``) runs the
Generate operator and three strokes through the brush operator, as an artist's mouse would send them: a
ridge across the north, a valley winding through the south and a patch of desert dunes painted in the east.
Both terrains are rendered with Workbench (``backend/render/preview.py``, camera in the south) and put side
by side. Prints how far each stroke moved the ground and that nothing outside the strokes changed.
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

from backend.editing.brushes import Stroke, footprint  # noqa: E402
from backend.headless import LocalBackend, render_preview  # noqa: E402
from backend.terrain import Heightfield  # noqa: E402

N, SIZE_M = 256, 4000.0
STROKES = [  # rows north to south, columns west to east, in cells of the 256² grid
    {"kind": "ridge", "points": [[62.0, 30.0, 1.0], [52.0, 90.0, 1.0], [66.0, 150.0, 1.0], [56.0, 215.0, 1.0]],
     "radius": 16.0, "strength": 1.0, "seed": 1},
    {"kind": "valley", "points": [[200.0, 20.0, 1.0], [170.0, 70.0, 1.0], [190.0, 120.0, 1.0], [160.0, 160.0, 1.0]],
     "radius": 14.0, "strength": 1.0, "seed": 2},
    {"kind": "style_paint", "points": [[130.0, 200.0, 1.0], [180.0, 215.0, 1.0]], "radius": 30.0, "strength": 0.5,
     "seed": 3, "style": "desert_dunes"},
]
LABELS = ("generated (alpine)", "sculpted: ridge, valley, painted dunes")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "brushes_render.png")
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
        reach = np.full(before.shape, np.inf)
        for s in STROKES:
            d = footprint(Stroke(s["kind"], np.array(s["points"]), s["radius"], 1.0), (0, 0, N, N)).distance.numpy()
            reach = np.minimum(reach, d / s["radius"])
            inside = d < s["radius"] / 2
            print(f"{s['kind']:<12} mean change in its core {np.abs(after - before)[inside].mean():6.1f} m")
        outside = reach > 1
        print(f"outside every stroke: {int((after != before)[outside].sum())} of {int(outside.sum())} cells changed")
        images = [Image.open(render_preview(Heightfield(h, cell), Path(tmp) / f"{name}.png")).convert("RGB")
                  for name, h in (("before", before), ("after", after))]
    width, height = images[0].size
    sheet = Image.new("RGB", (2 * width, height), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (image, label) in enumerate(zip(images, LABELS)):
        sheet.paste(image, (i * width, 0))
        draw.text((i * width + 10, 10), label, fill=(0, 0, 0))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
