"""Passages: the caves the model drew, joined the way groundwater joins cave chambers.

The voxel model places caves well but draws each as a pocket (it restores a worm tunnel's shape from a noisy one,
yet from noise alone its prior is a blob: ``reports/voxels``, issue 22). Real caves are chambers joined by the
passages water dissolves between them, along the rock's weak layers. So, like the erosion stage after the
terrain's diffusion, a small simulation runs after the chunk's: each pair of pockets that water could join cheaply
is joined along the least-cost way through the rock (Kruskal over the pockets, costs from one multi-source
Dijkstra on the 26-neighbour cell graph), and a passage is dissolved along it.

The cost of passing a cell is low where the model hedged toward a cave (its change channel negative), lower along
the strata's bedding planes (karst) and varies with a smooth resistance field fixed in world coordinates by the
world seed, so passages meander, follow the layers, and neighbouring chunks see the same rock. Only rock at least
``channels.TSDF_CELLS`` deep is dissolved: passages never breach the ground's skin.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass

import numpy as np
from scipy import ndimage, sparse
from scipy.sparse import csgraph

from . import channels as ch
from .chunk import STRATA_M
from .features import carve_spheres

_SIX = ndimage.generate_binary_structure(3, 1)
_OFFSETS = [o for o in itertools.product((-1, 0, 1), repeat=3) if o > (0, 0, 0)]  # each 26-neighbour pair once


@dataclass(frozen=True)
class PassageSettings:
    """How far water joins pockets and how wide it dissolves the passages.

    ``reach`` is calibrated on the training split (4 places x 2 seeds a style, annealed interactive chunks, the
    shipped voxel model): the caves' elongation 1.98 as drawn, 2.90 / 3.38 / 4.01 / 4.24 at reach 10 / 14 / 15 / 17,
    the corpus's surface chunks 3.75; systems per chunk 5.8 -> 5.1 / 4.7 / 4.4 / 4.1 (corpus 2.8); cave share
    0.0143 -> 0.0156 / 0.0166 / 0.0175 / 0.0182 (corpus 0.0144).
    """

    reach: float = 15.0  # the most a passage may cost: a cell of rock costs 1 where the model drew a cave's haze
    haze_cost: float = 4.0  # extra cost of a cell where the model drew no haze (change 0 or more)
    bedding_share: float = 0.5  # cost factor within a cell of a strata boundary (karst follows bedding planes)
    resistance: float = 0.6  # log-amplitude of the rock's smooth resistance field
    wavelength_m: float = 24.0  # its typical wavelength
    waves: int = 8  # plane waves summed into it
    min_cells: int = 8  # pockets smaller than this are specks, not chambers: left alone
    radius_share: float = 0.8  # a passage's radius over the narrower chamber's inscribed radius...
    radius_cells: tuple[float, float] = (1.2, 2.6)  # ...clipped to the corpus's worm tunnels' radii
    smoothing_cells: float = 1.5  # the course is smoothed this much before dissolving (the grid path is jagged)


PASSAGES = PassageSettings()


def resistance_field(world_seed: int, z: np.ndarray, y: np.ndarray, x: np.ndarray,
                     settings: PassageSettings = PASSAGES) -> np.ndarray:
    """(Z, Y, X) positive cost factors, smooth in world metres (a sum of plane waves drawn from the world seed): the
    same at a point whichever chunk asks."""
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(f"passages:{world_seed}".encode()).digest()[:8],
                                               "little"))
    waves = settings.waves
    directions = rng.normal(size=(waves, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    numbers = 2 * np.pi / (settings.wavelength_m * rng.uniform(0.6, 1.6, waves))
    phases = rng.uniform(0, 2 * np.pi, waves)
    field = np.zeros((len(z), len(y), len(x)))
    for d, k, p in zip(directions, numbers, phases):
        field += np.sin(k * (d[0] * z[:, None, None] + d[1] * y[None, :, None] + d[2] * x[None, None, :]) + p)
    return np.exp(settings.resistance * field / np.sqrt(waves / 2)).astype(np.float32)


def cell_costs(change: np.ndarray, z: np.ndarray, voxel_size: float, resistance: np.ndarray,
               settings: PassageSettings = PASSAGES) -> np.ndarray:
    """The cost of water passing each cell (see the module docstring)."""
    cost = (1 + settings.haze_cost * np.clip(1 + change, 0, 1)) * resistance
    to_boundary = np.abs(z / STRATA_M - np.round(z / STRATA_M)) * STRATA_M / voxel_size  # cells to a bedding plane
    return np.where((to_boundary <= 1)[:, None, None], settings.bedding_share * cost, cost).astype(np.float64)


def _graph(passable: np.ndarray, cost: np.ndarray) -> tuple[sparse.csr_matrix, np.ndarray, np.ndarray, np.ndarray]:
    """The passable cells' 26-neighbour graph: edge cost = step length x the mean of its cells' costs."""
    shape, index = passable.shape, np.arange(passable.size).reshape(passable.shape)
    heads, tails, weights = [], [], []
    for offset in _OFFSETS:
        a = tuple(slice(max(0, -k), n - max(0, k)) for n, k in zip(shape, offset))
        b = tuple(slice(max(0, k), n + min(0, k)) for n, k in zip(shape, offset))
        both = passable[a] & passable[b]
        heads.append(index[a][both])
        tails.append(index[b][both])
        weights.append(np.sqrt(np.dot(offset, offset)) * 0.5 * (cost[a][both] + cost[b][both]))
    u, v, w = np.concatenate(heads), np.concatenate(tails), np.concatenate(weights)
    graph = sparse.csr_matrix((np.r_[w, w], (np.r_[u, v], np.r_[v, u])), shape=(passable.size,) * 2)
    return graph, u, v, w


def chambers_of(caves: np.ndarray, settings: PassageSettings = PASSAGES) -> tuple[np.ndarray, np.ndarray]:
    """The pockets of ``caves`` (labels from ``ndimage.label`` with 6-neighbours) and the labels of those big
    enough to be joined (at least ``settings.min_cells``)."""
    labels, n = ndimage.label(caves, structure=_SIX)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    return labels, np.flatnonzero(sizes[1:] >= settings.min_cells) + 1


def passage_courses(labels: np.ndarray, chambers: np.ndarray, passable: np.ndarray, cost: np.ndarray,
                    settings: PassageSettings = PASSAGES) -> list[tuple[np.ndarray, tuple[int, int]]]:
    """The cell courses (K, 3) of the passages joining the ``chambers`` among the pockets ``labels``, each with
    the two chambers' labels, cheapest first: a minimum spanning forest over chambers whose cheapest joining way
    costs at most ``settings.reach``."""
    if len(chambers) < 2:
        return []
    caves = labels > 0
    graph, u, v, w = _graph(passable | caves, np.where(caves, 0.0, cost))
    flat = labels.ravel()
    sources = np.flatnonzero(np.isin(flat, chambers))
    dist, previous, nearest = csgraph.dijkstra(graph, indices=sources, min_only=True, return_predecessors=True)
    owner = np.where(nearest >= 0, flat[np.maximum(nearest, 0)], 0)
    meet = (owner[u] > 0) & (owner[v] > 0) & (owner[u] != owner[v])
    total = dist[u] + w + dist[v]
    best: dict[tuple[int, int], tuple[float, int, int]] = {}
    for a, b, t in zip(u[meet], v[meet], total[meet]):
        pair = (int(min(owner[a], owner[b])), int(max(owner[a], owner[b])))
        if t <= settings.reach and t < best.get(pair, (np.inf,))[0]:
            best[pair] = (float(t), int(a), int(b))
    parent = {int(c): int(c) for c in chambers}

    def root(c: int) -> int:
        while parent[c] != c:
            c = parent[c]
        return c

    courses = []
    for pair, (_, a, b) in sorted(best.items(), key=lambda item: (item[1][0], item[0])):
        ra, rb = root(pair[0]), root(pair[1])
        if ra == rb:
            continue
        parent[ra] = rb
        half: list[list[int]] = [[], []]
        for side, cell in enumerate((a, b)):  # back to the chamber's cell the way started from, which ends the course
            while cell >= 0:
                half[side].append(cell)
                if flat[cell]:
                    break
                cell = previous[cell]
        cells = half[0][::-1] + half[1]
        courses.append((np.array(np.unravel_index(cells, labels.shape)).T, pair))
    return courses


def dissolve(shape: tuple[int, ...], course: np.ndarray, radius: float, smoothing: float) -> np.ndarray:
    """The cells within ``radius`` of the smoothed course (its ends kept where they are)."""
    points = course.astype(np.float64)
    if len(points) > 2 and smoothing > 0:
        smooth = ndimage.gaussian_filter1d(points, smoothing, axis=0, mode="nearest")
        points = np.concatenate([points[:1], smooth[1:-1], points[-1:]])
    dense = [points[0]]  # at most half a cell between the centres, so the tube has no gaps
    for p, q in zip(points[:-1], points[1:]):
        steps = int(np.ceil(2 * np.linalg.norm(q - p)))
        dense += [p + (q - p) * t for t in np.arange(1, steps + 1) / max(steps, 1)]
    field = np.full(shape, np.inf)
    carve_spheres(field, np.array(dense), np.full(len(dense), radius))
    return field <= 0


def joined_caves(channels: np.ndarray, terrain_depth: np.ndarray, z: np.ndarray, voxel_size: float,
                 resistance: np.ndarray, settings: PassageSettings = PASSAGES) -> np.ndarray:
    """The chunk's channels with passages dissolved between its pockets (the change channel opened along them, as
    ``channels.grown_caves`` opens cells); every other cell and channel as it was."""
    terrain = ch.tsdf(terrain_depth, voxel_size)
    change = channels[0]
    caves = ch.cave_cells_drawn(change, terrain_depth, voxel_size)
    deep = terrain >= 1
    labels, chambers = chambers_of(caves, settings)
    courses = passage_courses(labels, chambers, deep, cell_costs(change, z, voxel_size, resistance, settings),
                              settings)
    if not courses:
        return channels
    inscribed = ndimage.distance_transform_edt(caves)  # each cave cell's distance to rock
    chamber_radius = dict(zip(chambers.tolist(), ndimage.maximum(inscribed, labels, chambers)))
    passage = np.zeros(caves.shape, bool)
    for course, pair in courses:
        narrower = min(float(chamber_radius[p]) for p in pair)
        radius = float(np.clip(settings.radius_share * narrower, *settings.radius_cells))
        passage |= dissolve(caves.shape, course, radius, settings.smoothing_cells)
    passage &= deep & ~caves
    out = channels.copy()
    out[0] = np.where(passage, np.minimum(change, ch.GROWN_TSDF - terrain), change)
    return out
