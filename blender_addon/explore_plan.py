"""Which world tiles explore mode shows, in which order, and which it lets go. No bpy, no torch.

Tile (tx, ty) of a world covers x in [tx L, (tx + 1) L] (east) and y in [-(ty + 1) L, -ty L] (north)
metres from the world origin, L = the tile's width: rows, so ty, grow south as in
``backend/world/tiles.py``. Around the tile under the viewpoint, ring k holds the tiles at
Chebyshev distance k; rings <= ``near`` are wanted at full detail (lod 0), the rest up to ``far`` at
the coarse level (lod 1). Tiles are asked for nearest first; a tile shown at a finer level than
wanted keeps it (it is already there). At most ``limit`` tiles are kept: the farthest unwanted go.

Vertex positions are computed so that neighbours share their edge vertices bit for bit, whatever
their level of detail: x = (tx + j / m) L with m = samples - 1, and j / m is the same correctly
rounded number for every level whose samples meet there.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

Coords = tuple[int, int]
MAX_RING = 8  # (2 * 8 + 1)² = 289 tiles in view at most


@dataclass(frozen=True)
class Rings:
    """How much of the world explore mode keeps around the viewpoint."""

    near: int = 1  # rings of full-detail (lod 0) tiles around the viewpoint's tile
    far: int = 2  # rings shown at all; those beyond `near` at the coarse level (lod 1)
    max_tiles: int = 0  # tile objects kept at most; never fewer than the tiles in view (0: one ring more)
    batch: int = 1  # tiles per backend job (a job's tiles arrive together, so 1 shows each at once)

    def __post_init__(self) -> None:
        if not 0 <= self.near <= self.far <= MAX_RING:
            raise ValueError(f"rings must satisfy 0 <= near <= far <= {MAX_RING}, got near={self.near}, far={self.far}")
        if self.max_tiles < 0:
            raise ValueError(f"max_tiles must be >= 0 (0: automatic), got {self.max_tiles}")
        if not 1 <= self.batch <= 64:
            raise ValueError(f"batch must be 1 to 64 tiles per job, got {self.batch}")

    @property
    def in_view(self) -> int:
        return (2 * self.far + 1) ** 2

    @property
    def limit(self) -> int:
        """Tiles kept at most: max_tiles, but never fewer than those in view."""
        return max(self.max_tiles or (2 * self.far + 3) ** 2, self.in_view)


def tile_at(x: float, y: float, tile_m: float) -> Coords:
    """The tile under the point (x east, y north, metres from the world origin)."""
    _check_tile_m(tile_m)
    return math.floor(x / tile_m), math.floor(-y / tile_m)


def tile_centre(coords: Coords, tile_m: float) -> tuple[float, float]:
    tx, ty = coords
    return (tx + 0.5) * tile_m, -(ty + 0.5) * tile_m


def ring(a: Coords, b: Coords) -> int:
    return max(abs(a[0] - b[0]), abs(a[1] - b[1]))


def wanted(x: float, y: float, tile_m: float, rings: Rings) -> list[tuple[Coords, int]]:
    """(coords, lod) of every tile in view, nearest first: by ring, then distance of the tile's
    centre from the point, then coordinates (so the order is total and stable)."""
    centre = tile_at(x, y, tile_m)
    cx, cy = centre

    def key(t: Coords) -> tuple[int, float, Coords]:
        mx, my = tile_centre(t, tile_m)
        return ring(t, centre), (mx - x) ** 2 + (my - y) ** 2, t

    square = [(cx + dx, cy + dy) for dy in range(-rings.far, rings.far + 1) for dx in range(-rings.far, rings.far + 1)]
    return [(t, 0 if ring(t, centre) <= rings.near else 1) for t in sorted(square, key=key)]


def next_request(want: list[tuple[Coords, int]], shown: Mapping[Coords, int], batch: int) -> tuple[int, list[Coords]] | None:
    """The next job: (lod, tiles) for the first wanted tile not shown at its level or finer, plus the
    following missing ones at the same level, up to `batch`; None when everything is shown."""
    missing = [(t, lod) for t, lod in want if shown.get(t, math.inf) > lod]
    if not missing:
        return None
    lod = missing[0][1]
    return lod, [t for t, k in missing if k == lod][:batch]


def still_wanted(request: tuple[int, Iterable[Coords]], want: list[tuple[Coords, int]]) -> bool:
    """Whether a job in flight still brings something wanted (else it is cancelled: the view moved on)."""
    lod, tiles = request
    levels = dict(want)
    return any(t in levels and levels[t] >= lod for t in tiles)


def evictions(shown: Mapping[Coords, int], want: list[tuple[Coords, int]], x: float, y: float, tile_m: float,
              limit: int) -> list[Coords]:
    """Tiles to drop so at most `limit` remain: never a wanted one, the farthest from the point first."""
    keep = {t for t, _ in want}
    spare = [t for t in shown if t not in keep]
    over = len(shown) - limit
    if over <= 0 or not spare:
        return []

    def distance(t: Coords) -> float:
        mx, my = tile_centre(t, tile_m)
        return (mx - x) ** 2 + (my - y) ** 2

    return sorted(spare, key=lambda t: (-distance(t), t))[:over]


def neighbours(coords: Coords) -> list[Coords]:
    tx, ty = coords
    return [(tx + dx, ty + dy) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dx or dy]


def shown_heights(tiles: Mapping[Coords, tuple[int, np.ndarray]], coords: Coords) -> np.ndarray:
    """Tile `coords`'s heights as shown, from `tiles` (coords -> (lod, heights)): every sample it shares
    with a shown neighbour takes the value of its best holder (finest level, then last in row-major
    order, as ``backend.world.tiles.stitch`` writes them), so all holders show the same number there;
    along an edge with a coarser neighbour the samples between its vertices lie on its straight edge.

    Neighbours can differ slightly on their shared samples (super-resolution runs per tile, and tiles of
    different blocks come from different base canvases); this makes one level's tiles the stitched map
    exactly, and closes the cracks where levels meet.
    """
    lod, own = tiles[coords]
    out = np.array(own, dtype=np.float32)
    m, (tx, ty) = out.shape[0] - 1, coords

    def rank(c: Coords) -> tuple[int, int, int]:
        return -tiles[c][0], c[1], c[0]

    better = sorted((n for n in neighbours(coords) if n in tiles and rank(n) > rank(coords)), key=rank)
    for n in better:  # ascending rank: the best holder writes last
        theirs = tiles[n][1]
        mn = theirs.shape[0] - 1
        top = max(m, mn)  # samples per tile at the finer of the two levels
        mine, yours = top // m, top // mn  # strides of each grid in those samples
        step = max(mine, yours)  # positions on both grids
        rows = max(ty, n[1]) * top, min(ty, n[1]) * top + top
        cols = max(tx, n[0]) * top, min(tx, n[0]) * top + top
        out[(rows[0] - ty * top) // mine:(rows[1] - ty * top) // mine + 1:step // mine,
            (cols[0] - tx * top) // mine:(cols[1] - tx * top) // mine + 1:step // mine] = \
            theirs[(rows[0] - n[1] * top) // yours:(rows[1] - n[1] * top) // yours + 1:step // yours,
                   (cols[0] - n[0] * top) // yours:(cols[1] - n[0] * top) // yours + 1:step // yours]
    edges = {(1, 0): (slice(None), -1), (-1, 0): (slice(None), 0), (0, 1): (-1, slice(None)), (0, -1): (0, slice(None))}
    for (dx, dy), edge in edges.items():
        n = (tx + dx, ty + dy)
        if n in tiles and tiles[n][0] > lod:  # coarser: follow its edge, a straight line between its vertices
            step = m // (tiles[n][1].shape[0] - 1)
            vertices = np.arange(0, m + 1, step)
            out[edge] = np.interp(np.arange(m + 1), vertices, out[edge][vertices])
    return out


def tile_positions(heights: np.ndarray, coords: Coords, tile_m: float) -> np.ndarray:
    """(S, S, 3) float32 world positions of a tile's (S, S) heights (row 0 north, column 0 west).

    Computed in float64 from the tile's integer coordinates and the sample's fraction of the tile,
    so the edge a tile shares with a neighbour (at any level of detail) is the same bits in both.
    """
    heights = np.asarray(heights)
    if heights.ndim != 2 or heights.shape[0] != heights.shape[1] or heights.shape[0] < 2:
        raise ValueError(f"tile heights must be (S, S) with S >= 2, got shape {heights.shape}")
    if not np.isfinite(heights).all():
        raise ValueError(f"tile {coords} has NaN or infinite heights")
    _check_tile_m(tile_m)
    m = heights.shape[0] - 1
    fraction = np.arange(m + 1, dtype=np.float64) / m
    tx, ty = coords
    out = np.empty((m + 1, m + 1, 3), dtype=np.float32)
    out[:, :, 0] = ((tx + fraction) * tile_m).astype(np.float32)[None, :]
    out[:, :, 1] = (-(ty + fraction) * tile_m).astype(np.float32)[:, None]
    out[:, :, 2] = heights
    return out


def world_path_for_blend(blend_path: str | os.PathLike[str]) -> Path:
    """``/art/island.blend`` -> ``/art/island.world``, as ``backend.world.store.world_path_for_blend``."""
    blend = Path(blend_path)
    return blend.with_name(f"{blend.stem}.world")


def _check_tile_m(tile_m: float) -> None:
    if not (math.isfinite(tile_m) and tile_m > 0):
        raise ValueError(f"tile width must be positive metres, got {tile_m!r}")
