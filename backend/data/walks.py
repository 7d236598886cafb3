"""Walks over large simulated maps: the training data of the world memory (``backend.memory``).

A large map (a corpus built with ``--map-size`` several base windows wide at the base model's cell size,
see ``scripts/train_memory.sh``) is cut into a grid of tiles of ``tile_cells`` base cells; regions are
``region_tiles``² blocks of them, as in a world. One item is a walk of up to ``max_context`` neighbouring
tiles (the context the memory is written from, in walk order) and a target window on a 16-cell grid near
it that the memory-conditioned denoiser must predict. Heights are in a world's frame (``tile_frame``): each
large map is shifted and scaled as a whole so that its tiles span [-1, 1] on average, as the base model's
windows do in a world, not per window, so a window's level and relief are not given: they must come from
the context. A simulated map's tiles differ in level far more than a world's do (a world's base windows each
span the whole relief), so the maps' large-scale level trend is first scaled down until their tiles' mean
levels vary as much as a world's (``flatten_levels``): a memory trained on the raw maps learns to expect, and
so makes, tiles far above and below the world's range.

Items are deterministic functions of their index (map, dihedral symmetry of the whole map, walk), so a
resumed training run sees the batches of an unbroken one. Geometry follows ``backend.world.memory_state``:
offsets are (row, col); the neighbours are the 3 x 3 tiles around the tile holding the window's centre.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from backend.data.datasets import N_DIHEDRAL, MapSet, conditioning, dihedral
from backend.diffusion.preconditioning import Conditioning
from backend.grids import downsample, upsample
from backend.memory.network import NEIGHBOURS

WINDOW_STEP = 16  # window origins on this grid of base cells (where MultiDiffusion puts them in a world)
MOVES = ((0, 1), (1, 0), (0, -1), (-1, 0))


def tile_frame(large: Tensor, n: int) -> Tensor:
    """Large maps [N, S, S] shifted and scaled (each as a whole) so that their n-cell tiles span [-1, 1] on
    average: mean tile range 2, mean tile mid-range 0. The base model makes every window of a world span about
    [-1, 1] (it was trained on whole maps), so this is the frame the memory is read in; a map normalised to
    [-1, 1] as a whole would give tiles half that relief, and a memory trained there shrinks the world's tiles."""
    tiles = large.unfold(-2, n, n).unfold(-2, n, n)  # [N, S/n, S/n, n, n]
    low, high = tiles.amin(dim=(-2, -1)), tiles.amax(dim=(-2, -1))
    mid = ((low + high) / 2).mean(dim=(-2, -1))[:, None, None]
    half = ((high - low) / 2).mean(dim=(-2, -1)).clamp_min(1e-6)[:, None, None]
    return (large - mid) / half


def flatten_levels(large: Tensor, n: int, level_std: float, iterations: int = 24) -> Tensor:
    """Large maps [N, S, S] in the tile frame with their large-scale trend (the tile means, upsampled bicubically)
    scaled down, per map, until the std of the n-cell tiles' mean levels is at most ``level_std``, then put back
    in the tile frame; maps already that flat are unchanged. Shapes at the scale of a tile and below are kept."""
    trend = upsample(downsample(large, n)[:, None], n)[:, 0]  # downsample: the tiles' mean levels
    trend = trend - trend.mean(dim=(-2, -1), keepdim=True)

    def flattened(keep: Tensor) -> Tensor:
        return tile_frame(large - (1 - keep[:, None, None]) * trend, n)

    def spread(maps: Tensor) -> Tensor:
        return downsample(maps, n).flatten(1).std(dim=1)

    low, high = torch.zeros(len(large)), torch.ones(len(large))
    for _ in range(iterations):  # bisection on the share of the trend kept (the spread grows with it)
        mid = (low + high) / 2
        above = spread(flattened(mid)) > level_std
        high, low = torch.where(above, mid, high), torch.where(above, low, mid)
    return torch.where((spread(large) <= level_std)[:, None, None], large, flattened(low))


class WalkDataset:
    """Items (target [1, n, n], cond, extras) from walks over large maps; see the module docstring.

    extras: context [L, 1, n, n], ctx_valid [L], ctx_region [L], nb_index [9], nb_present [9],
    nb_relative [9, 2], offset [2], target_region, fold_region (-1 = none), region_count (L = max_context).
    """

    def __init__(self, maps: MapSet, factor: int, tile_cells: int, region_tiles: int, max_context: int = 6,
                 walks_per_map: int = 64, fold_probability: float = 0.25, seed: int = 0,
                 level_std: float | None = None):
        self.maps = maps
        large = downsample(torch.from_numpy(maps.heights), factor)  # (N, S, S) metres
        size = large.shape[-1]
        self.grid = size // tile_cells
        if self.grid < 2 or self.grid % region_tiles or self.grid * tile_cells != size:
            raise ValueError(f"maps of {size} base cells do not split into a whole number of {region_tiles}² regions "
                             f"of {tile_cells}-cell tiles (at least 2 tiles per side)")
        self.large = tile_frame(large, tile_cells)
        if level_std is not None:
            self.large = flatten_levels(self.large, tile_cells, level_std)
        self.n, self.region_tiles, self.max_context = tile_cells, region_tiles, max_context
        self.walks_per_map, self.fold_probability, self.seed = walks_per_map, fold_probability, seed
        self.regions_per_side = self.grid // region_tiles

    def __len__(self) -> int:
        return len(self.maps) * N_DIHEDRAL * self.walks_per_map

    def _region(self, tile: tuple[int, int]) -> int:
        return (tile[0] // self.region_tiles) * self.regions_per_side + tile[1] // self.region_tiles

    def _walk(self, rng: np.random.Generator, centre: tuple[int, int]) -> list[tuple[int, int]]:
        """Up to max_context tiles, each a 4-neighbour step from the last; usually starting next to the target
        and avoiding the target's own tile, so the window must be continued, not copied."""
        length = int(rng.integers(0, self.max_context + 1))
        g = self.grid
        if rng.random() < 0.7:
            start = tuple(int(np.clip(c + rng.integers(-1, 2), 0, g - 1)) for c in centre)
        else:
            start = (int(rng.integers(g)), int(rng.integers(g)))
        walk = [start]
        while len(walk) < length:
            r, c = walk[-1]
            options = [(r + dr, c + dc) for dr, dc in MOVES if 0 <= r + dr < g and 0 <= c + dc < g]
            walk.append(options[int(rng.integers(len(options)))])
        walk = walk[:length]
        if rng.random() < 0.8:
            walk = [t for t in walk if t != centre]
        return walk

    def __getitem__(self, i: int) -> tuple[Tensor, Conditioning, dict[str, Tensor]]:
        m, rest = divmod(i, N_DIHEDRAL * self.walks_per_map)
        k = rest // self.walks_per_map
        rng = np.random.default_rng([self.seed, i])
        full = dihedral(self.large[m], k)
        n, L = self.n, self.max_context
        positions = (full.shape[-1] - n) // WINDOW_STEP + 1
        r0, c0 = (int(v) * WINDOW_STEP for v in rng.integers(0, positions, 2))
        centre_rc = (r0 + n // 2, c0 + n // 2)
        centre = (centre_rc[0] // n, centre_rc[1] // n)
        walk = self._walk(rng, centre)

        context = torch.zeros(L, 1, n, n)
        valid, region = torch.zeros(L), torch.zeros(L, dtype=torch.long)
        for j, (tr, tc) in enumerate(walk):
            context[j, 0] = full[tr * n:(tr + 1) * n, tc * n:(tc + 1) * n]
            valid[j], region[j] = 1.0, self._region((tr, tc))
        nb_index, nb_present = torch.zeros(len(NEIGHBOURS), dtype=torch.long), torch.zeros(len(NEIGHBOURS))
        nb_relative = torch.zeros(len(NEIGHBOURS), 2)
        for j, (dy, dx) in enumerate(NEIGHBOURS):
            tile = (centre[0] + dy, centre[1] + dx)
            nb_relative[j] = torch.tensor([(tile[0] * n - r0) / n, (tile[1] * n - c0) / n])
            if tile in walk:
                nb_index[j] = max(w for w, t in enumerate(walk) if t == tile)  # its latest write
                nb_present[j] = 1.0
        span = self.region_tiles * n
        region_origin = (centre[0] // self.region_tiles * span, centre[1] // self.region_tiles * span)
        offset = torch.tensor([(centre_rc[0] - region_origin[0]) / span, (centre_rc[1] - region_origin[1]) / span])
        regions = self.regions_per_side ** 2
        fold = int(rng.integers(regions)) if rng.random() < self.fold_probability else -1
        extras = {"context": context, "ctx_valid": valid, "ctx_region": region, "nb_index": nb_index,
                  "nb_present": nb_present, "nb_relative": nb_relative, "offset": offset,
                  "target_region": torch.tensor(self._region(centre)), "fold_region": torch.tensor(fold),
                  "region_count": torch.tensor(regions)}
        x = full[r0:r0 + n, c0:c0 + n][None].contiguous()
        cond = conditioning(int(self.maps.style[m]), self.maps.sliders[m], len(self.maps.style_names))
        return x, cond, extras
