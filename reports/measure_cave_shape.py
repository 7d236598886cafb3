"""Tunnels or pockets: the cave share and elongation (``backend.voxels.measures.elongation``) of voxel models' caves
beside the voxel corpus's, a quick check to compare training changes (issue 22).

    python reports/measure_cave_shape.py [--model a.safetensors b.safetensors ...]

Per model: 2 held-out places a style, 2 world seeds each, annealed interactive chunks at the level holding the
terrain surface (``make_voxel_report``'s places, a smaller draw of them). The corpus: its surface chunks (the
middle column) of every third region. Elongation: mean over the chunks with a cave of at least
``ELONGATION_MIN_CELLS`` cells.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # allow `python reports/measure_cave_shape.py` from anywhere
    sys.path.insert(0, str(ROOT))

from backend.data.datasets import load_maps  # noqa: E402
from backend.data.voxel_corpus import MAP_CELL_M, load_regions  # noqa: E402
from backend.generators.voxel_chunks import generate_chunk_with_stats  # noqa: E402
from backend.models.voxel import VoxelModel  # noqa: E402
from backend.voxels.chunk import CHUNK  # noqa: E402
from backend.voxels.measures import chunk_measures  # noqa: E402
from reports.make_voxel_report import depth_of, place, request_for, surface_measures  # noqa: E402

PLACES, SEEDS = 2, 2


def summary(found: list[dict[str, float]]) -> str:
    shapes = [f["elongation"] for f in found if not np.isnan(f["elongation"])]
    return (f"cave share {np.mean([f['cave_share'] for f in found]):.4f}  elongation {np.mean(shapes):.2f}  "
            f"({len(shapes)} of {len(found)} chunks with a cave to shape)")


def model_measures(model: VoxelModel, corpus: list[str]) -> list[dict[str, float]]:
    """The measures of annealed chunks at PLACES held-out places a style, SEEDS world seeds each."""
    maps = load_maps(corpus, "heldout")
    rng = np.random.default_rng(0)
    found = []
    for s, style in enumerate(maps.style_names):
        shrunk = [h * (MAP_CELL_M / maps.cell_size) for h in maps.heights[maps.style == s]]
        for heights in shrunk[:PLACES]:
            key = place(heights, rng)
            for seed in range(SEEDS):
                req = request_for(heights, key, style, seed, refinement="anneal")
                found.append(chunk_measures(generate_chunk_with_stats(model, req)[0].solid, depth_of(req)))
    return found


def corpus_measures(folder: str) -> list[dict[str, float]]:
    """The measures of the surface chunks in the middle column of every third corpus region."""
    regions = load_regions(Path(folder))
    middle = [(slice(kz * CHUNK, (kz + 1) * CHUNK), slice(CHUNK, 2 * CHUNK), slice(CHUNK, 2 * CHUNK))
              for kz in range(regions.density.shape[1] // CHUNK)]
    return [m for n in range(0, len(regions), 3) for m in surface_measures(regions, n, middle)]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", nargs="*", default=[str(ROOT / "models" / "voxel_chunks.safetensors")])
    ap.add_argument("--corpus", nargs="+", default=[str(ROOT / "corpus" / v) for v in ("v2a", "v2b", "v2c")])
    ap.add_argument("--voxel-corpus", default=str(ROOT / "corpus" / "voxels"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    print(f"corpus: {summary(corpus_measures(args.voxel_corpus))}", flush=True)
    for path in args.model:
        print(f"{path}: {summary(model_measures(VoxelModel.load(path), args.corpus))}", flush=True)


if __name__ == "__main__":
    main()
