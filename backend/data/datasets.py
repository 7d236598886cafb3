"""Training datasets for the terrain models, read from corpus folders (see ``backend.data.corpus``).

The corpus stores tiles; the models want whole maps, so tiles are stitched back by (map_id, row,
col). Heights are normalised per map to [-1, 1] (min -> -1, max -> 1): the artist chooses the
relief in metres, the network only learns shapes. Two views of the same maps:

* :class:`BaseDataset`: whole maps area-averaged ``factor`` times (256² at 30 m -> 64² at 120 m);
* :class:`SuperResDataset`: crops of the full-resolution map, the target being the residual over
  the bicubic upsampling of that coarse map, which is given as a spatial condition.

Items are deterministic functions of their index (dihedral flips/rotations and crop positions
are part of the index), so a resumed training run sees exactly the batches of an unbroken one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from backend.diffusion.preconditioning import Conditioning
from backend.grids import downsample, upsample

N_DIHEDRAL = 8  # 4 rotations x optional transpose


@dataclass(frozen=True)
class MapSet:
    """Whole maps of one split: heights (N, S, S) metres, style (N,), sliders (N, 4) in [0, 1]."""

    heights: np.ndarray
    style: np.ndarray
    sliders: np.ndarray
    style_names: tuple[str, ...]
    slider_names: tuple[str, ...]
    cell_size: float

    def __len__(self) -> int:
        return len(self.heights)


def load_maps(corpus_dirs: Sequence[str | Path], split: str) -> MapSet:
    """Stitch the tiles of every map of ``split`` ("train" or "heldout") in the given corpora."""
    heights, styles, sliders = [], [], []
    style_names = slider_names = None
    cell_size = None
    for d in corpus_dirs:
        d = Path(d)
        manifest = json.loads((d / "manifest.json").read_text())
        tiles: dict[int, list[tuple[int, int, np.ndarray]]] = {}
        meta: dict[int, tuple[int, np.ndarray]] = {}
        for shard in manifest["shards"].get(split, []):
            with np.load(d / shard["file"], allow_pickle=False) as z:  # each z[key] reads the whole array
                style_names = tuple(str(s) for s in z["style_names"])
                slider_names = tuple(str(s) for s in z["slider_names"])
                h, map_id, row, col, style, slider = (z[k] for k in ("heights", "map_id", "row", "col", "style",
                                                                     "sliders"))
            for i in range(len(h)):
                m = int(map_id[i])
                tiles.setdefault(m, []).append((int(row[i]), int(col[i]), h[i]))
                meta[m] = (int(style[i]), slider[i])
        t = manifest["tile"]
        n = manifest["map_size"] // t
        for m in sorted(tiles):
            if len(tiles[m]) != n * n:
                raise ValueError(f"{d}: map {m} has {len(tiles[m])} of {n * n} tiles; shards missing?")
            full = np.zeros((n * t, n * t), np.float32)
            for r, c, h in tiles[m]:
                full[r * t:(r + 1) * t, c * t:(c + 1) * t] = h
            heights.append(full)
            styles.append(meta[m][0])
            sliders.append(meta[m][1])
        if cell_size is not None and manifest["cell_size"] != cell_size:
            raise ValueError(f"corpora disagree on cell size: {cell_size} vs {manifest['cell_size']}")
        cell_size = manifest["cell_size"]
    if not heights:
        raise ValueError(f"no {split!r} maps in {list(map(str, corpus_dirs))}")
    return MapSet(np.stack(heights), np.array(styles, np.int64), np.stack(sliders).astype(np.float32),
                  style_names, slider_names, float(cell_size))


def normalise(heights: Tensor) -> Tensor:
    """Per map (last two dims) min -> -1, max -> 1; flat maps become zeros."""
    low = heights.amin(dim=(-2, -1), keepdim=True)
    high = heights.amax(dim=(-2, -1), keepdim=True)
    return 2 * (heights - low) / (high - low).clamp_min(1e-6) - 1


def dihedral(x: Tensor, k: int) -> Tensor:
    """The k-th of the 8 symmetries of the square, on the last two dims."""
    if k >= 4:
        x = x.transpose(-2, -1)
    return torch.rot90(x, k % 4, dims=(-2, -1))


def conditioning(style: int, sliders: np.ndarray, n_styles: int) -> Conditioning:
    """One-hot style and sliders centred on 0 (so the dropped/null value 0 means 'average')."""
    weights = torch.zeros(n_styles)
    weights[style] = 1.0
    return Conditioning(style_weights=weights, sliders=torch.from_numpy(2 * sliders - 1).float())


class BaseDataset:
    """Whole maps downsampled by ``factor``, normalised, in 8 orientations: items (x [1, s, s], cond)."""

    def __init__(self, maps: MapSet, factor: int = 4):
        self.maps = maps
        self.coarse = normalise(downsample(torch.from_numpy(maps.heights), factor))  # (N, s, s)

    def __len__(self) -> int:
        return len(self.maps) * N_DIHEDRAL

    def __getitem__(self, i: int) -> tuple[Tensor, Conditioning]:
        m, k = divmod(i, N_DIHEDRAL)
        x = dihedral(self.coarse[m], k)[None].contiguous()
        return x, conditioning(int(self.maps.style[m]), self.maps.sliders[m], len(self.maps.style_names))


class SuperResDataset:
    """Crops of (fine residual / residual_scale, cond with spatial = upsampled coarse)."""

    def __init__(self, maps: MapSet, factor: int = 4, crop: int = 64, crops_per_side: int = 7,
                 residual_scale: float | None = None):
        self.maps, self.factor, self.crop, self.crops_per_side = maps, factor, crop, crops_per_side
        fine = normalise(torch.from_numpy(maps.heights))  # (N, S, S) in the base's normalisation
        self.coarse_up = upsample(downsample(fine, factor)[:, None], factor)[:, 0]
        self.residual = fine - self.coarse_up
        self.residual_scale = residual_scale or float(self.residual.std())
        size = fine.shape[-1]
        if crop > size:
            raise ValueError(f"crop {crop} larger than the maps ({size})")
        self.offsets = np.linspace(0, size - crop, crops_per_side).round().astype(int)

    def __len__(self) -> int:
        return len(self.maps) * N_DIHEDRAL * self.crops_per_side ** 2

    def __getitem__(self, i: int) -> tuple[Tensor, Conditioning]:
        m, rest = divmod(i, N_DIHEDRAL * self.crops_per_side ** 2)
        k, pos = divmod(rest, self.crops_per_side ** 2)
        r, c = (int(self.offsets[j]) for j in divmod(pos, self.crops_per_side))
        rows, cols = slice(r, r + self.crop), slice(c, c + self.crop)
        both = torch.stack([self.residual[m, rows, cols] / self.residual_scale, self.coarse_up[m, rows, cols]])
        both = dihedral(both, k).contiguous()
        cond = conditioning(int(self.maps.style[m]), self.maps.sliders[m], len(self.maps.style_names))
        return both[:1], cond.replace(spatial=both[1:])
