"""The README's caves picture: a cave system carved under learned terrain through the add-on, rendered by Blender.

    python reports/make_caves_render.py [--out docs/images/caves_render.png] [--models-dir models]

Starts a backend with the shipped models, then in headless Blender (``backend/render/caves.py``) generates a
learned alpine terrain, asks the Caves panel for a 4 x 4-chunk region of 2 m voxels around the 3D cursor at the
terrain's southern edge and carves a cave system with the voxel brush as an artist would: a winding tunnel, a
cavern with a crystal vein, a shaft down from the surface and a branch out through the region's south wall.
The region's open south and east walls show it as a cutaway. Prints each job's timings.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # allow `python reports/make_caves_render.py` from anywhere
    sys.path.insert(0, str(ROOT))

from PIL import Image, ImageDraw  # noqa: E402

from backend.headless import LocalBackend  # noqa: E402
from backend.models.shipped import MODELS_DIR  # noqa: E402

CURSOR = (70.0, -778.0, 0.0)  # region x [-64, 192], y [-960, -704]: its south wall 40 m from the terrain's edge
STROKES = [  # x, y in world metres, z above the ground under the cursor
    {"op": "carve", "radius": 9.0, "points": [[-60.0, -830.0, -40.0], [0.0, -800.0, -30.0], [60.0, -850.0, -46.0],
                                              [120.0, -820.0, -34.0], [190.0, -860.0, -44.0]]},
    {"op": "carve", "radius": 26.0, "points": [[60.0, -880.0, -75.0]]},
    {"op": "fill", "radius": 6.0, "material": "crystal", "points": [[45.0, -895.0, -98.0], [75.0, -870.0, -97.0]]},
    {"op": "carve", "radius": 7.0, "points": [[125.0, -790.0, 10.0], [122.0, -805.0, -14.0], [120.0, -820.0, -34.0]]},
    {"op": "carve", "radius": 10.0, "points": [[60.0, -880.0, -75.0], [110.0, -920.0, -64.0], [150.0, -965.0, -56.0]]},
]

LABELS = ("the caves' region on the learned terrain (2 m voxels, 4 x 4 x 2 chunks)",
          "cutaway from below, terrain hidden: tunnels, cavern, crystal vein, shaft")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "caves_render.png")
    ap.add_argument("--models-dir", type=Path, default=MODELS_DIR)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:  # the world folder (the backend may write only there)
        backend = LocalBackend("cpu", startup_timeout=300.0,
                               extra_args=["--models-dir", str(args.models_dir), "--root", tmp])
        config = {"generate": {"target": "Terrain", "resolution": 129, "size_m": 2000.0, "height_m": 400.0, "seed": 2,
                               "sea_level": 0.0, "generator": "diffusion", "style_preset": "alpine"},
                  "world": str(Path(tmp) / "caves.world"), "cursor": CURSOR, "strokes": STROKES,
                  "strokes_from_ground": True,
                  "caves": {"size": 4, "depth": 2, "voxel_size": "2", "mesh_style": "smooth"},
                  "render": {"width": 720, "height": 540, "terrain_drop_m": 1.0, "views": [
                      {"out": str(Path(tmp) / "above.png"), "direction": [0.8, -1.0, 0.9]},
                      {"out": str(Path(tmp) / "below.png"), "direction": [0.6, -1.0, -0.2], "hide_terrain": True,
                       "distance": 0.75}]}}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        try:
            run = subprocess.run([sys.executable, "-m", "backend.render.caves", backend.address, json.dumps(config)],
                                 cwd=ROOT, capture_output=True, text=True, timeout=1800)
        finally:
            backend.close()
        if run.returncode != 0:
            raise SystemExit(f"caves failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}")
        results = json.loads(next(l for l in run.stdout.splitlines() if l.startswith("RESULTS "))[8:])
        side_by_side(results["render"], LABELS, args.out)
    print(f"terrain: {results['generator']}\nregion: {results['region']['status']}")
    for stroke, timing in zip(STROKES, results["strokes"]):
        print(f"{stroke['op']:<10} radius {stroke['radius']:4.1f} m: {timing['status']}")
    print(f"wrote {args.out}")


def side_by_side(images: list[str], labels: tuple[str, ...], out: Path) -> None:
    """The views next to each other, each with its label."""
    tiles = [Image.open(p).convert("RGB") for p in images]
    sheet = Image.new("RGB", (sum(t.width for t in tiles), tiles[0].height), "white")
    x = 0
    for tile, label in zip(tiles, labels):
        sheet.paste(tile, (x, 0))
        ImageDraw.Draw(sheet).text((x + 10, 10), label, fill="black")
        x += tile.width
    sheet.save(out)


if __name__ == "__main__":
    main()
