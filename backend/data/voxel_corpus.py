"""The voxel corpus: blocks of chunks under corpus terrain with simulated caves, overhangs and arches.

``python -m backend.data.voxel_corpus --out corpus/voxels`` cuts, per style, regions of 2 x 3 x 3 chunks
(64 x 96 x 96 cells at 2 m) from the 2D corpus maps, shrunk from 30 m to 8 m cells with heights scaled
alike (slopes kept), so a 192 m region holds 24 map cells of relief. The region sits at whole chunk keys in
the map's frame with the terrain surface in its middle, and ``backend.voxels.features.simulate_region``
draws the features at random slider values. Whole regions are stored, so every chunk keeps its neighbours
(outpainting is learned from windows that straddle chunk borders).

:class:`VoxelWindowDataset` serves 40³ windows (a chunk and 4 cells of its neighbours each side) as the
model's channels folded 2³ (``backend.voxels.channels``), with the terrain and a random set of known cells
(neighbour slabs, locked boxes) as conditions; items are pure functions of their index.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from backend.data.corpus import write_npz
from backend.data.datasets import N_DIHEDRAL, dihedral, load_maps
from backend.diffusion.preconditioning import Conditioning
from backend.voxels import channels as ch
from backend.voxels.chunk import CHUNK, terrain_heights_at
from backend.voxels.features import SLIDER_NAMES, STYLE_FEATURES, Region, simulate_region

VOXEL_SIZE_M = 2.0
REGION_CHUNKS = (2, 3, 3)  # chunks up, south, east
MAP_CELL_M = 8.0  # corpus maps are shrunk to this cell size (heights scaled alike)
MARGIN = 4  # cells of the neighbouring chunks around a chunk in a model window
WINDOW = CHUNK + 2 * MARGIN
SPATIAL_CHANNELS = 2 + ch.N_CHANNELS  # terrain tsdf, known mask, known channels (before folding)


def map_region(heights: np.ndarray, corpus_cell_m: float, chunk_row: int, chunk_col: int) -> Region:
    """The region whose north-west chunk is (chunk_col, chunk_row) under a shrunk corpus map, surface centred."""
    shrunk = heights * (MAP_CELL_M / corpus_cell_m)
    side = CHUNK * VOXEL_SIZE_M
    nz, ny, nx = (CHUNK * c for c in REGION_CHUNKS)
    steps = VOXEL_SIZE_M * (np.arange(max(ny, nx)) + 0.5)
    x = chunk_col * side + steps[:nx]
    y = -chunk_row * side - steps[:ny]
    surface = terrain_heights_at(shrunk, MAP_CELL_M, (0.0, 0.0), x, y).astype(np.float32)
    k = int(np.round((np.median(surface) - nz * VOXEL_SIZE_M * 0.6) / side))
    z = k * side + VOXEL_SIZE_M * (np.arange(nz) + 0.5)
    return Region(z, y, x, surface, VOXEL_SIZE_M)


def build_voxel_corpus(out: str | Path, corpus_dirs: Sequence[str], regions_per_style: int, seed: int = 0) -> dict:
    """Simulate ``regions_per_style`` regions per style from the corpora's train maps; write one shard per style."""
    maps = load_maps(corpus_dirs, "train")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    map_side_chunks = int(maps.heights.shape[-1] * MAP_CELL_M // (CHUNK * VOXEL_SIZE_M))
    shards = []
    for s, style in enumerate(maps.style_names):
        ids = np.flatnonzero(maps.style == s)
        if style not in STYLE_FEATURES or not len(ids):  # a style without features, or without maps here
            continue
        arrays: dict[str, list[np.ndarray]] = {k: [] for k in ("density", "material", "surface", "z", "y", "x",
                                                               "sliders", "seed")}
        for _ in range(regions_per_style):
            m = int(rng.choice(ids))
            row, col = rng.integers(0, map_side_chunks - REGION_CHUNKS[1], 2)
            region = map_region(maps.heights[m], maps.cell_size, int(row), int(col))
            sliders = rng.uniform(0, 1, len(SLIDER_NAMES))
            region_seed = int(rng.integers(2**31))
            density, material = simulate_region(region, style, dict(zip(SLIDER_NAMES, sliders)), region_seed)
            for key, value in (("density", density.astype(np.float16)), ("material", material),
                               ("surface", region.surface), ("z", region.z), ("y", region.y), ("x", region.x),
                               ("sliders", sliders.astype(np.float32)), ("seed", np.int64(region_seed))):
                arrays[key].append(value)
        name = f"voxels-{style}.npz"
        write_npz(out / name, {k: np.stack(v) for k, v in arrays.items()})
        shards.append({"file": name, "style": style, "regions": regions_per_style})
    manifest = {"voxel_size": VOXEL_SIZE_M, "region_chunks": REGION_CHUNKS, "map_cell_m": MAP_CELL_M,
                "style_names": list(maps.style_names), "slider_names": list(SLIDER_NAMES), "seed": seed,
                "corpus": list(corpus_dirs), "shards": shards}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


@dataclass(frozen=True)
class VoxelRegions:
    """Every region of a voxel corpus: density (N, Z, Y, X) metres, material, surface (N, Y, X), z (N, Z)."""

    density: np.ndarray
    material: np.ndarray
    surface: np.ndarray
    z: np.ndarray
    style: np.ndarray
    sliders: np.ndarray
    style_names: tuple[str, ...]
    voxel_size: float

    def __len__(self) -> int:
        return len(self.density)

    def terrain_depth(self, n: int) -> np.ndarray:
        return (self.surface[n][None] - self.z[n][:, None, None]).astype(np.float32)


def load_regions(folder: str | Path) -> VoxelRegions:
    """All shards of a voxel corpus folder, in manifest order."""
    folder = Path(folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    names = tuple(manifest["style_names"])
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("density", "material", "surface", "z", "sliders", "style")}
    for shard in manifest["shards"]:
        with np.load(folder / shard["file"], allow_pickle=False) as z:
            for key in ("density", "material", "surface", "z", "sliders"):
                parts[key].append(z[key])
        parts["style"].append(np.full(shard["regions"], names.index(shard["style"])))
    return VoxelRegions(**{k: np.concatenate(v) for k, v in parts.items()}, style_names=names,
                        voxel_size=float(manifest["voxel_size"]))


def known_mask(rng: np.random.Generator) -> np.ndarray:
    """(WINDOW,)*3 bool: a random set of present neighbour slabs and, sometimes, a locked box in the chunk."""
    mask = np.zeros((WINDOW,) * 3, bool)
    m, far = MARGIN, WINDOW - MARGIN
    slabs = (np.s_[:m], np.s_[far:])
    for axis in range(3):
        for slab in slabs:
            if rng.random() < 0.5:
                index = [slice(None)] * 3
                index[axis] = slab
                mask[tuple(index)] = True
    if rng.random() < 0.3:
        size = rng.integers(4, 17, 3)
        lo = rng.integers(m, far - size + 1)
        mask[lo[0]:lo[0] + size[0], lo[1]:lo[1] + size[1], lo[2]:lo[2] + size[2]] = True
    return mask


def spatial_condition(terrain_depth: np.ndarray, known: np.ndarray, known_channels: np.ndarray,
                      voxel_size: float) -> np.ndarray:
    """(SPATIAL_CHANNELS, *S) float32: terrain tsdf, known mask, known channels (zero where unknown)."""
    return np.concatenate([ch.tsdf(terrain_depth, voxel_size)[None], known[None].astype(np.float32),
                           known_channels * known[None]]).astype(np.float32)


class VoxelWindowDataset:
    """Windows of WINDOW³ cells from the regions, in 8 horizontal orientations, with random known cells."""

    windows_per_region = 64

    def __init__(self, regions: VoxelRegions, seed: int = 0):
        self.regions = regions
        self.seed = seed

    def __len__(self) -> int:
        return len(self.regions) * self.windows_per_region

    def __getitem__(self, i: int) -> tuple[Tensor, Conditioning]:
        r = i // self.windows_per_region
        rng = np.random.default_rng((self.seed, i))
        reg = self.regions
        lo = [int(rng.integers(0, n - WINDOW + 1)) for n in reg.density.shape[1:]]
        box = tuple(slice(a, a + WINDOW) for a in lo)
        depth = reg.terrain_depth(r)[box]
        x = ch.encode(reg.density[r][box].astype(np.float32), reg.material[r][box], depth, reg.voxel_size)
        cond = spatial_condition(depth, known_mask(rng), x, reg.voxel_size)
        k = int(rng.integers(N_DIHEDRAL))
        x_t, cond_t = (dihedral(torch.from_numpy(a), k).contiguous() for a in (x, cond))
        return ch.fold(x_t[None])[0], region_conditioning(reg, r, cond_t)


def region_conditioning(regions: VoxelRegions, r: int, spatial: Tensor) -> Conditioning:
    """Region r's style (one-hot) and sliders (in [-1, 1]) with a window's spatial condition [C, *cells], folded."""
    style = torch.zeros(len(regions.style_names))
    style[int(regions.style[r])] = 1.0
    return Conditioning(style_weights=style, sliders=torch.from_numpy(2 * regions.sliders[r] - 1).float(),
                        spatial=ch.fold(spatial[None])[0])


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Build the voxel corpus (caves, overhangs, arches under corpus maps).")
    ap.add_argument("--out", default="corpus/voxels")
    ap.add_argument("--corpus", nargs="+", default=["corpus/v2a", "corpus/v2b", "corpus/v2c"])
    ap.add_argument("--regions-per-style", type=int, default=14)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    manifest = build_voxel_corpus(args.out, args.corpus, args.regions_per_style, args.seed)
    print(f"wrote {sum(s['regions'] for s in manifest['shards'])} regions to {args.out}")


if __name__ == "__main__":
    main()
