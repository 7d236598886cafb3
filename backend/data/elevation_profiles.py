"""1D elevation profiles along rivers, ridges and cliffs of the simulated corpus: the curve-guide model's data.

Three kinds of line, found on every map of a corpus split (``extract_map``):

* river: D8 flow paths on the depression-filled surface from channel heads (drainage area >=
  ``channel_cells``) towards the outlet, longest first, each cut where it joins a path already taken
  (one profile per stream segment). Heights are the filled surface's, i.e. the water surface: it
  never rises downstream, lakes are flat reaches.
* ridge: the same on the inverted surface -z. Water on -z gathers along crests, so its flow paths
  follow ridge lines (climbing spurs, crossing peaks over their highest saddles); heights are z's.
* cliff: upper edges of steep scarps. A scarp is a band of ``min_band_cells`` or more cells whose
  Gaussian-smoothed slope is >= ``cliff_deg``; its rim is the non-steep cells next to it and above it
  (mesa rims in canyon_mesa maps, the tops of trough walls elsewhere). Each connected rim is traced by
  its longest geodesic path, repeatedly, until the rest is shorter than ``min_cells``.

Paths stop ``edge_cells`` from the map edge (the outlet ring). Every path is resampled to ``length``
samples evenly spaced in arc length (measured along the path smoothed over 5 cells, so D8 zig-zags do
not count as length), keeping the heights of the path's own cells (so a river stays monotone).

Normalisation (``to_network``): the model sees the deviation from the chord between the two ends, in
units of the map's relief times a per-kind scale (so each kind's deviations have std 0.5): the ends
are 0 by construction, which is what lets inpainting pin them to any height. It is conditioned on the
kind (one-hot) and two numbers that carry the scale back: the drop between the ends over the relief,
and the path length over the map's extent.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Sequence

import numpy as np
import scipy.ndimage as ndi
import scipy.sparse
import scipy.sparse.csgraph
import torch
from torch import Tensor

from backend.data.datasets import MapSet, load_maps
from backend.diffusion.preconditioning import Conditioning
from backend.durable import atomic_write
from backend.grids import slope_degrees
from backend.simulation.flow import accumulate, d8_receivers, fill_depressions

# kind -> (label, what a curve guide of it draws): the curve job's kinds and the add-on's Kind menu (hello_reply)
KIND_NOTES: dict[str, tuple[str, str]] = {
    "ridge": ("Ridge", "A crest along the curve, higher than the ground, with peaks and saddles"),
    "river": ("River", "A channel with banks along the curve, its bed running downhill"),
    "cliff": ("Cliff", "A step along the curve: high ground on its left (Flip: right), low on the other side"),
}
KINDS: tuple[str, ...] = tuple(KIND_NOTES)
REVERSIBLE = {"ridge": True, "river": False, "cliff": True}  # a river has a direction: downstream
SLIDER_NAMES: tuple[str, ...] = ("drop_over_relief", "length_over_extent")
TARGET_STD = 0.5  # per-kind std of the network's input (EDM's default sigma_data)


@dataclass(frozen=True)
class ProfileSettings:
    length: int = 64  # samples per profile; the 1D U-Net needs a multiple of 2**(levels - 1)
    min_cells: int = 24  # shortest path kept, in cells
    channel_cells: float = 100.0  # drainage area (cells) where a channel, or on -z a crest line, starts
    cliff_deg: float = 35.0  # slope of the smoothed surface from which a band counts as a scarp
    cliff_smooth_cells: float = 2.0  # Gaussian sigma of that smoothing
    min_band_cells: int = 60  # smaller steep patches are not scarps
    edge_cells: int = 2  # paths stop this close to the map edge
    max_per_map: int = 40  # per kind and map: the longest paths


@dataclass(frozen=True)
class ProfileSet:
    """N profiles: heights (N, L) float32 metres along the line, sample positions (N, L, 2) (row, col) cells,
    kind (N,) index into KINDS, length_m (N,), and the units of their map: relief_m (max - min) and
    extent_m (side length); style (N,) and map_index (N,) say where each came from."""

    heights: np.ndarray
    cells: np.ndarray
    kind: np.ndarray
    length_m: np.ndarray
    relief_m: np.ndarray
    extent_m: np.ndarray
    style: np.ndarray
    map_index: np.ndarray
    style_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.heights)

    def of_kind(self, kind: str) -> np.ndarray:
        return np.flatnonzero(self.kind == KINDS.index(kind))

    def save(self, path: str | Path, key: str) -> None:
        """Atomically write the set as an .npz (no pickle); ``key`` says what it was extracted from."""
        arrays = {f.name: getattr(self, f.name) for f in fields(self)}
        arrays["style_names"] = np.array(self.style_names)
        with atomic_write(Path(path)) as tmp, open(tmp, "wb") as f:
            np.savez(f, key=np.array(key), **arrays)

    @classmethod
    def load(cls, path: str | Path, key: str) -> ProfileSet | None:
        """The set saved at ``path`` if it was extracted from what ``key`` says, else None."""
        if not Path(path).is_file():
            return None
        with np.load(path, allow_pickle=False) as z:
            if str(z["key"]) != key:
                return None
            return cls(**{f.name: z[f.name] for f in fields(cls) if f.name != "style_names"},
                       style_names=tuple(str(n) for n in z["style_names"]))


# -- normalisation shared by training and sampling ------------------------------------------------

def chord(start: np.ndarray | float, end: np.ndarray | float, length: int) -> np.ndarray:
    """(..., L) straight line from start to end (float64)."""
    t = np.linspace(0.0, 1.0, length)
    return np.asarray(start, np.float64)[..., None] * (1 - t) + np.asarray(end, np.float64)[..., None] * t


def to_network(heights: np.ndarray, relief_m: np.ndarray | float, scale: np.ndarray | float) -> np.ndarray:
    """(..., L) metres -> network units: deviation from the ends' chord / (relief * kind scale); ends are 0."""
    h = np.asarray(heights, np.float64)
    unit = np.asarray(relief_m, np.float64) * np.asarray(scale, np.float64)
    return (h - chord(h[..., 0], h[..., -1], h.shape[-1])) / np.asarray(unit)[..., None]


def from_network(x: np.ndarray, start_m: float, end_m: float, relief_m: float, scale: float) -> np.ndarray:
    """(L,) network units -> metres between the given ends (float64)."""
    return chord(start_m, end_m, x.shape[-1]) + np.asarray(x, np.float64) * relief_m * scale


def profile_conditioning(kind: str, drop_m: float, length_m: float, relief_m: float, extent_m: float) -> Conditioning:
    """Unbatched conditioning of one profile: one-hot kind and (drop / relief, length / extent)."""
    onehot = torch.zeros(len(KINDS))
    onehot[KINDS.index(kind)] = 1.0
    return Conditioning(style_weights=onehot,
                        sliders=torch.tensor([drop_m / relief_m, length_m / extent_m], dtype=torch.float32))


# -- extraction ------------------------------------------------------------------------------------

def _near_edge(flat: np.ndarray, shape: tuple[int, int], edge: int) -> np.ndarray:
    r, c = np.divmod(flat, shape[1])
    return (r < edge) | (c < edge) | (r >= shape[0] - edge) | (c >= shape[1] - edge)


def flow_paths(z: np.ndarray, cell_size: float, settings: ProfileSettings) -> list[np.ndarray]:
    """Stream segments of the D8 network of ``z`` (H, W), as flat cell indices from head downstream.

    Paths from every channel head, longest first; each is cut at the first cell already taken by a
    longer one (that junction cell included) and at the map edge.
    """
    h, w = z.shape
    filled = fill_depressions(torch.from_numpy(z.astype(np.float64))[None], 1e-6)
    receiver = d8_receivers(filled, cell_size)[0]
    area = accumulate(receiver, torch.ones_like(filled))[0].numpy().ravel()
    rec = receiver[0].numpy().ravel()
    idx = np.arange(h * w)
    channel = area >= settings.channel_cells
    fed = np.zeros(h * w, dtype=bool)
    fed[rec[channel & (rec != idx)]] = True  # a channel cell drains into it
    near_edge = _near_edge(idx, (h, w), settings.edge_cells)
    paths = []
    for head in np.flatnonzero(channel & ~fed & ~near_edge):
        path = [head]
        while rec[path[-1]] != path[-1] and not near_edge[rec[path[-1]]]:
            path.append(rec[path[-1]])
        paths.append(np.array(path))
    paths.sort(key=len, reverse=True)
    taken = np.zeros(h * w, dtype=bool)
    segments = []
    for path in paths:
        hit = np.flatnonzero(taken[path])
        segment = path if not len(hit) else path[:hit[0] + 1]
        taken[segment] = True
        if len(segment) >= settings.min_cells:
            segments.append(segment)
    return segments


def rim_mask(z: np.ndarray, cell_size: float, settings: ProfileSettings) -> np.ndarray:
    """(H, W) bool: cells on the upper edge of a steep scarp (see the module docstring)."""
    smooth = ndi.gaussian_filter(z.astype(np.float64), settings.cliff_smooth_cells, mode="nearest")
    steep = slope_degrees(smooth, cell_size) >= settings.cliff_deg
    labels, n = ndi.label(steep, np.ones((3, 3)))
    sizes = ndi.sum(steep, labels, np.arange(1, n + 1))
    steep = np.isin(labels, np.flatnonzero(sizes >= settings.min_band_cells) + 1)
    ring = np.ones((3, 3))
    n_steep = ndi.convolve(steep.astype(np.float64), ring, mode="constant")
    steep_mean = ndi.convolve(np.where(steep, smooth, 0.0), ring, mode="constant") / np.maximum(n_steep, 1)
    rim = ~steep & (n_steep > 0) & (smooth > steep_mean)
    e = settings.edge_cells
    rim[:e], rim[-e:], rim[:, :e], rim[:, -e:] = False, False, False, False
    return rim


def _longest_geodesic(cells: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Flat indices of the longest shortest path through one 8-connected set of cells (two Dijkstra sweeps)."""
    h, w = shape
    pos = np.full(h * w, -1)
    pos[cells] = np.arange(len(cells))
    r, c = np.divmod(cells, w)
    src, dst, weight = [], [], []
    for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
        r2, c2 = r + dr, c + dc
        inside = (r2 >= 0) & (r2 < h) & (c2 >= 0) & (c2 < w)
        j = np.where(inside, pos[np.clip(r2, 0, h - 1) * w + np.clip(c2, 0, w - 1)], -1)
        ok = j >= 0
        src.append(np.flatnonzero(ok))
        dst.append(j[ok])
        weight.append(np.full(int(ok.sum()), np.hypot(dr, dc)))
    n = len(cells)
    graph = scipy.sparse.csr_matrix((np.concatenate(weight), (np.concatenate(src), np.concatenate(dst))), shape=(n, n))
    far = lambda d: int(np.argmax(np.where(np.isinf(d), -1.0, d)))  # noqa: E731
    a = far(scipy.sparse.csgraph.dijkstra(graph, directed=False, indices=0))
    dist, pred = scipy.sparse.csgraph.dijkstra(graph, directed=False, indices=a, return_predecessors=True)
    path = [far(dist)]
    while path[-1] != a:
        path.append(int(pred[path[-1]]))
    return cells[np.array(path)]


def rim_paths(z: np.ndarray, cell_size: float, settings: ProfileSettings) -> list[np.ndarray]:
    """Cliff-top lines: longest geodesic paths through the rim, each removed (with its neighbours) in turn."""
    free = rim_mask(z, cell_size, settings)
    paths: list[np.ndarray] = []
    while len(paths) < settings.max_per_map:
        labels, n = ndi.label(free, np.ones((3, 3)))
        if n == 0:
            break
        sizes = ndi.sum(free, labels, np.arange(1, n + 1))
        biggest = int(np.argmax(sizes)) + 1
        if sizes[biggest - 1] < settings.min_cells:
            break
        path = _longest_geodesic(np.flatnonzero(labels.ravel() == biggest), z.shape)
        used = np.zeros(z.size, dtype=bool)
        used[path] = True
        free &= ~ndi.binary_dilation(used.reshape(z.shape), np.ones((3, 3)))
        if len(path) >= settings.min_cells:
            paths.append(path)
        else:  # the component's longest path is short: drop the whole component
            free &= labels != biggest
    return paths


def along_path(path: np.ndarray, heights: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray, float]:
    """A path of flat indices on ``heights`` (H, W) -> (heights (L,), positions (L, 2), arc length in cells)."""
    rc = np.stack(np.divmod(path, heights.shape[1]), axis=1).astype(np.float64)
    smooth = ndi.uniform_filter1d(rc, size=5, axis=0, mode="nearest")
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(smooth, axis=0), axis=1))])
    t = np.linspace(0.0, s[-1], length)
    z = heights.ravel()[path].astype(np.float64)
    pos = np.stack([np.interp(t, s, smooth[:, k]) for k in range(2)], axis=1)
    return np.interp(t, s, z), pos, float(s[-1])


def extract_map(z: np.ndarray, cell_size: float, settings: ProfileSettings = ProfileSettings()
                ) -> dict[str, list[tuple[np.ndarray, np.ndarray, float]]]:
    """kind -> [(heights (L,) m, positions (L, 2) cells, arc length m), ...] of one map (H, W) metres."""
    z = z.astype(np.float64)
    filled = fill_depressions(torch.from_numpy(z)[None], 1e-6)[0].numpy()
    found = {"river": (flow_paths(z, cell_size, settings), filled),
             "ridge": (flow_paths(-z, cell_size, settings), z),
             "cliff": (rim_paths(z, cell_size, settings), z)}
    out: dict[str, list[tuple[np.ndarray, np.ndarray, float]]] = {}
    for kind, (paths, surface) in found.items():
        keep = sorted(paths, key=len, reverse=True)[:settings.max_per_map]
        out[kind] = []
        for p in keep:
            h, pos, cells = along_path(p, surface, settings.length)
            out[kind].append((h, pos, cells * cell_size))
    return out


def extract_profiles(maps: MapSet, settings: ProfileSettings = ProfileSettings()) -> ProfileSet:
    """Every kind's profiles from every map of ``maps``."""
    rows: dict[str, list] = {k: [] for k in ("heights", "cells", "kind", "length_m", "relief_m", "extent_m",
                                              "style", "map_index")}
    for i, z in enumerate(maps.heights):
        relief, extent = float(np.ptp(z)), (max(z.shape) - 1) * maps.cell_size
        for kind, found in extract_map(z, maps.cell_size, settings).items():
            for h, pos, length_m in found:
                for key, value in (("heights", h), ("cells", pos), ("kind", KINDS.index(kind)), ("length_m", length_m),
                                   ("relief_m", relief), ("extent_m", extent), ("style", maps.style[i]),
                                   ("map_index", i)):
                    rows[key].append(value)
    if not rows["heights"]:
        raise ValueError(f"no profiles found in {len(maps)} maps")
    return ProfileSet(np.array(rows["heights"], np.float32), np.array(rows["cells"], np.float32),
                      np.array(rows["kind"], np.int64), np.array(rows["length_m"], np.float32),
                      np.array(rows["relief_m"], np.float32), np.array(rows["extent_m"], np.float32),
                      np.array(rows["style"], np.int64), np.array(rows["map_index"], np.int64), maps.style_names)


def load_profiles(corpus_dirs: Sequence[str | Path], split: str, settings: ProfileSettings = ProfileSettings(),
                  cache: str | Path | None = None, maps: MapSet | None = None) -> ProfileSet:
    """The profiles of a corpus split (``maps``: that split, if already loaded); with ``cache`` (an .npz
    path) extracted once and read back after (extraction takes about a second per map)."""
    key = json.dumps({"corpus": [str(d) for d in corpus_dirs], "split": split, "settings": asdict(settings)})
    found = None if cache is None else ProfileSet.load(cache, key)
    if found is None:
        found = extract_profiles(maps if maps is not None else load_maps(corpus_dirs, split), settings)
        if cache is not None:
            Path(cache).parent.mkdir(parents=True, exist_ok=True)
            found.save(cache, key)
    return found


# -- training view ---------------------------------------------------------------------------------

def deviation_scales(profiles: ProfileSet) -> dict[str, float]:
    """Per kind: the unit (times the relief) that gives its chord deviations std TARGET_STD.

    A kind absent from the set gets the mean of the others' (its conditioning is then untrained).
    """
    dev = to_network(profiles.heights, profiles.relief_m, 1.0)
    found = {k: float(dev[profiles.of_kind(k)].std()) / TARGET_STD for k in KINDS if len(profiles.of_kind(k))}
    fallback = float(np.mean(list(found.values())))
    return {k: found.get(k, fallback) for k in KINDS}


class ProfileDataset:
    """Items (x [1, L], Conditioning) in network units; kinds balanced by repetition, ridges and cliffs
    also reversed (a river is only read downstream). Deterministic per index."""

    def __init__(self, profiles: ProfileSet, scales: dict[str, float] | None = None):
        self.profiles = profiles
        self.scales = scales or deviation_scales(profiles)
        unit = np.array([self.scales[KINDS[k]] for k in profiles.kind])
        self.x = torch.from_numpy(to_network(profiles.heights, profiles.relief_m, unit)).float()
        variants = [(i, False) for i in range(len(profiles))] + \
                   [(i, True) for i in range(len(profiles)) if REVERSIBLE[KINDS[profiles.kind[i]]]]
        by_kind = {k: [v for v in variants if profiles.kind[v[0]] == KINDS.index(k)] for k in KINDS}
        most = max(len(v) for v in by_kind.values())
        self.items = [v[j % len(v)] for v in by_kind.values() if v for j in range(most)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[Tensor, Conditioning]:
        p, flip = self.items[i]
        ps = self.profiles
        h = ps.heights[p][::-1] if flip else ps.heights[p]
        x = self.x[p].flip(0) if flip else self.x[p]
        cond = profile_conditioning(KINDS[ps.kind[p]], float(h[0] - h[-1]), float(ps.length_m[p]),
                                    float(ps.relief_m[p]), float(ps.extent_m[p]))
        return x[None].contiguous(), cond
