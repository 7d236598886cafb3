"""Voxel chunks under a heightfield: the learned caves, overhangs and arches of one chunk, made plausible.

``generate_chunk(model, request) -> VoxelChunk`` is what a server job calls (with the voxel model the server
holds in ``ShippedModels.voxel``). One chunk is sampled on a canvas of the chunk plus ``margin``
cells of its neighbours each side: the neighbours already generated are known cells there (outpainting),
artist-locked cells are known inside the chunk (inpainting), and at every step the denoiser's estimate
takes the known values where they are, and is pulled toward them a few cells beyond (``feathered``), so
features crossing a chunk face continue. The initial noise comes from (world seed, chunk key, voxel size)
only, so a chunk regenerates bit for bit. Its caves are grown through the model's haze and joined by passages
(``backend.voxels.passages``); after decoding (``backend.voxels.channels``), the refinement
(``backend.voxels.refine``) deletes floating rock, optionally redraws the violating cells with the model,
and anneals the rest; locked cells are pasted back bit for bit at the end.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Protocol

import numpy as np
import torch
from scipy import ndimage
from torch import Tensor

from backend.diffusion.guidance import ClassifierFreeGuidance
from backend.diffusion.preconditioning import Conditioning
from backend.diffusion.samplers import get_sampler
from backend.diffusion.schedules import karras_sigmas
from backend.models.voxel import VOXEL_QUALITY, VoxelModel, VoxelSampling
from backend.voxels import channels as ch
from backend.voxels import energy as en
from backend.voxels import passages
from backend.voxels.chunk import CHUNK, ChunkKey, VoxelChunk, terrain_heights_at
from backend.voxels.materials import compose
from backend.voxels.refine import AnnealSchedule, anneal, delete_floating, model_unary

REFINEMENTS = ("none", "delete", "redraw", "anneal")  # each includes the ones before it but "redraw" in anneal
Neighbours = dict[tuple[int, int, int], VoxelChunk]  # (di east, dj south, dk up) -> the chunk there


@dataclass(frozen=True)
class VoxelChunkRequest:
    """Everything one chunk depends on. Heights are the terrain mesh's (``meshing.heightfield`` frame)."""

    heights: np.ndarray  # (rows, cols) terrain heights, metres
    cell_size: float  # metres per heightfield cell
    grid_origin: tuple[float, float]  # world (x, y) of heightfield vertex [0, 0] (its north-west corner)
    key: ChunkKey
    voxel_size: float = 2.0  # metres per voxel; the model was trained at 2 m
    world_seed: int = 0
    style_weights: dict[str, float] = field(default_factory=lambda: {"alpine": 1.0})
    sliders: dict[str, float] = field(default_factory=dict)  # cave_density, overhang in [0, 1]; unsent 0.5
    passages: float = 0.5  # 0..1: how far passages join the drawn caves (0 none, 0.5 the calibrated reach, 1 twice it)
    neighbours: Neighbours = field(default_factory=dict)  # chunks already generated around this one
    locked: np.ndarray | None = None  # (CHUNK,)*3 bool: cells kept exactly as in ``current``
    current: VoxelChunk | None = None  # the chunk as the artist has it (needed with ``locked``)
    quality: str = "interactive"  # a key of backend.models.voxel.VOXEL_QUALITY
    refinement: str = "anneal"  # one of REFINEMENTS
    memory: Tensor | None = None  # [1, T, D] tokens a memory model reads (backend.world.voxel_memory); None: none

    def __post_init__(self) -> None:
        if self.quality not in VOXEL_QUALITY:
            raise ValueError(f"quality must be one of {sorted(VOXEL_QUALITY)}, got {self.quality!r}")
        if self.refinement not in REFINEMENTS:
            raise ValueError(f"refinement must be one of {REFINEMENTS}, got {self.refinement!r}")
        if np.ndim(self.heights) != 2 or min(np.shape(self.heights)) < 2 or not self.cell_size > 0:
            raise ValueError("heights must be a 2D grid of at least 2 x 2 and cell_size positive")
        if not np.isfinite(self.heights).all():
            raise ValueError("heights must be finite numbers (metres)")
        if not 0 <= self.passages <= 1:
            raise ValueError(f"passages must lie in [0, 1], got {self.passages}")
        if any(not 0 <= float(v) <= 1 for v in self.sliders.values()) or not self.style_weights:
            raise ValueError(f"sliders must lie in [0, 1] and a style be given, got {self.sliders}, {self.style_weights}")
        if self.locked is not None and (np.shape(self.locked) != (CHUNK,) * 3 or self.current is None):
            raise ValueError(f"locked must be a {(CHUNK,) * 3} bool array and comes with the current chunk")
        for offset, chunk in self.neighbours.items():
            if chunk.voxel_size != self.voxel_size or max(map(abs, offset)) != 1:
                raise ValueError(f"neighbour {offset} must be adjacent and at voxel size {self.voxel_size}")


@dataclass
class ChunkStats:
    """What one generation did: seconds per phase and the energy terms' cell counts before and after."""

    sample_s: float = 0.0
    refine_s: float = 0.0
    floating_removed: int = 0
    violations_raw: dict[str, int] = field(default_factory=dict)
    violations_final: dict[str, int] = field(default_factory=dict)
    anneal_trace: list[float] = field(default_factory=list)


def chunk_seed(world_seed: int, key: ChunkKey, voxel_size: float) -> int:
    """A 63-bit seed from the world seed and the chunk's identity alone."""
    text = f"voxel:{world_seed}:{key.i}:{key.j}:{key.k}:{voxel_size}".encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "little") >> 1


def chunk_noise(model: VoxelModel, request: VoxelChunkRequest) -> Tensor:
    """The folded initial noise of the canvas, keyed by the chunk alone."""
    side = (CHUNK + 2 * int(model.meta["margin"])) // ch.FOLD
    generator = torch.Generator().manual_seed(chunk_seed(request.world_seed, request.key, request.voxel_size))
    return torch.randn((1, ch.N_CHANNELS * ch.FOLD**3, side, side, side), generator=generator)


def canvas_axes(key: ChunkKey, voxel_size: float, margin: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """World z, y, x of the canvas cells: the chunk's cells and ``margin`` more each side."""
    x0, y0, z0 = key.origin(voxel_size)
    steps = np.arange(-margin, CHUNK + margin, dtype=np.float64) * voxel_size
    return z0 + steps, y0 - steps, x0 + steps


class TerrainFrame(Protocol):
    """Where the terrain lies: a chunk request's, or a region's chunk settings."""

    @property
    def heights(self) -> np.ndarray: ...  # (H, W) metres, row 0 north

    @property
    def cell_size(self) -> float: ...

    @property
    def grid_origin(self) -> tuple[float, float]: ...  # (x, y) of heights[0, 0]


def terrain_depth(frame: TerrainFrame, z: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The terrain's depth (metres) below its surface at cells (z, y, x), (len z, len y, len x)."""
    surface = terrain_heights_at(frame.heights, frame.cell_size, frame.grid_origin, x, y)
    return (surface[None] - z[:, None, None]).astype(np.float32)


def known_cells(request: VoxelChunkRequest, depth: np.ndarray, margin: int) -> tuple[np.ndarray, np.ndarray]:
    """(mask, channels) of the canvas cells known from the neighbours and the locked cells."""
    size = CHUNK + 2 * margin
    known = np.zeros((size,) * 3, bool)
    values = np.zeros((ch.N_CHANNELS, size, size, size), np.float32)
    for (di, dj, dk), chunk in request.neighbours.items():
        canvas, inside = [], []
        for d in (dk, dj, di):  # canvas axes (z up = k, rows south = j, columns east = i)
            lo, hi = max(d * CHUNK, -margin), min(d * CHUNK + CHUNK, CHUNK + margin)
            canvas.append(slice(lo + margin, hi + margin))
            inside.append(slice(lo - d * CHUNK, hi - d * CHUNK))
        canvas_box, chunk_box = tuple(canvas), tuple(inside)
        known[canvas_box] = True
        values[(slice(None), *canvas_box)] = ch.encode(chunk.density[chunk_box], chunk.material[chunk_box],
                                                       depth[canvas_box], request.voxel_size)
    if request.locked is not None:
        assert request.current is not None
        centre = (slice(margin, margin + CHUNK),) * 3
        locked_values = ch.encode(request.current.density, request.current.material, depth[centre],
                                  request.voxel_size)
        values[(slice(None), *centre)][:, request.locked] = locked_values[:, request.locked]
        known[centre] |= request.locked
    return known, values


# Cells next to known ones are drawn toward the nearest known cell's channels, with a weight falling from 1 at
# the known cells to 0 this many cells past them. With plain replacement (weight 1 on known cells, 0 beside
# them) the model, whose known-cell conditioning is weak after its short training, ended a tunnel that met a
# chunk face in a flat wall right there (0-24 % of a tunnel's section open in the next plane). Feathered, a
# feature crossing the face continues and closes within these cells, so the face is no sharper than a plane
# inside a chunk; wider bands thinned the new chunk's own features next to the face.
FEATHER_CELLS = 2


def feathered(known: np.ndarray, values: np.ndarray, band: int = FEATHER_CELLS) -> tuple[np.ndarray, np.ndarray]:
    """(weight, target) of the denoiser's estimate: 1 and the known channels on known cells; within ``band``
    cells of them the nearest known cell's channels, at weight 1 - distance / (band + 1); 0 farther away."""
    if not known.any():
        return np.zeros(known.shape, np.float32), values
    distance, nearest = ndimage.distance_transform_edt(~known, return_indices=True)
    weight = np.clip(1.0 - distance / (band + 1), 0.0, 1.0).astype(np.float32)
    return weight, values[:, nearest[0], nearest[1], nearest[2]]


def sample_canvas(model: VoxelModel, cond: Conditioning, known: Tensor, values: Tensor, noise: Tensor,
                  settings: VoxelSampling, start: Tensor | None = None) -> Tensor:
    """Folded channels sampled with the estimate pulled to ``values`` by weight ``known`` (1 replaces) at every step.

    start: SDEdit from this folded state at sigma_max (redraws) instead of pure noise.
    """
    sigmas = karras_sigmas(settings.steps, settings.sigma_min, settings.sigma_max)
    # Sliders at 0.5 are the null the guidance compares with: the guided estimate is the plain one, at half the cost.
    sliders_set = cond.sliders is not None and bool(cond.sliders.abs().max() > 0)
    scale = settings.slider_guidance if sliders_set else 1.0
    network = ClassifierFreeGuidance(model.denoiser, scale, drop=("sliders",))

    def denoise(x: Tensor, sigma: Tensor, c: Conditioning | None = None) -> Tensor:
        return torch.lerp(network(x, sigma, c), values, known)

    x = noise * settings.sigma_max + (0 if start is None else start)
    with torch.no_grad():
        return get_sampler("dpmpp_2m")(denoise, x, sigmas, cond=cond)


def _fold(block: np.ndarray, device: torch.device) -> Tensor:
    return ch.fold_numpy(block)[None].to(device)


def _apply_classes(classes: np.ndarray, density: np.ndarray, ore: np.ndarray, depth: np.ndarray,
                   z: np.ndarray, cover: str, voxel_size: float) -> tuple[np.ndarray, np.ndarray]:
    """Density and materials agreeing with refined classes (changed cells sit half a cell off the surface)."""
    density = density.copy()
    solid = classes == en.SOLID
    half = 0.5 * voxel_size
    density[solid & (density <= 0)] = half
    density[~solid & (density > 0)] = -half
    density = ch.terrain_outside_features(density, depth)
    material = compose(solid, depth, z, cover, ore, classes == en.WATER, classes == en.LAVA)
    return density, material


@dataclass
class _Drawn:
    """One chunk as drawn: its canvas inputs, the decoded chunk and the channels it came from."""

    channels: np.ndarray  # (3, CHUNK, CHUNK, CHUNK)
    density: np.ndarray
    material: np.ndarray
    depth: np.ndarray  # terrain depth of the chunk's cells
    z: np.ndarray
    cover: str


def _count(found: dict[str, np.ndarray]) -> dict[str, int]:
    return {name: int(cells.sum()) for name, cells in found.items()}


def anchor_faces(depth: np.ndarray, neighbours: Neighbours) -> tuple[str, ...]:
    """The faces a solid piece may hang from: all but the top when the terrain stays below the chunk's top
    and no chunk above is known to hold rock at its bottom (then rock touching only the top is in the air)."""
    above = neighbours.get((0, 0, 1))
    if depth[-1].max() > 0 or (above is not None and above.solid[0].any()):
        return en.FACES
    return tuple(f for f in en.FACES if f != "top")


def refine_chunk(drawn: _Drawn, request: VoxelChunkRequest, stats: ChunkStats,
                 redraw: Callable[[np.ndarray], np.ndarray] | None) -> tuple[np.ndarray, np.ndarray]:
    """Delete floating rock; then, as the request says, redraw the violating cells and anneal the rest."""
    vs = request.voxel_size
    frozen = request.locked
    anchors = anchor_faces(drawn.depth, request.neighbours)
    classes = en.classes_of(drawn.density, drawn.material)
    stats.violations_raw = _count(en.violations(classes, anchors=anchors))
    if request.refinement == "none":
        stats.violations_final = dict(stats.violations_raw)
        return drawn.density, drawn.material
    classes, stats.floating_removed = delete_floating(classes, anchors, frozen)
    chans = drawn.channels
    if request.refinement == "redraw" and redraw is not None:
        bad = np.zeros(classes.shape, bool)
        for cells in en.local_violations(classes).values():
            bad |= cells
        if bad.any():
            mask = ndimage.binary_dilation(bad, iterations=2)
            if frozen is not None:
                mask &= ~frozen
            chans = redraw(mask)
            density, _ = ch.decode(chans, drawn.depth, drawn.z, vs, drawn.cover)
            classes = en.classes_of(density, compose(density > 0, drawn.depth, drawn.z, drawn.cover,
                                                     chans[2] > ch.ORE_LEVEL, chans[1] > ch.FLUID_LEVEL,
                                                     chans[1] < -ch.FLUID_LEVEL))
            classes, removed = delete_floating(classes, anchors, frozen)
            stats.floating_removed += removed
    if request.refinement == "anneal":
        unary = model_unary(ch.tsdf(drawn.depth, vs) + chans[0], chans[1])
        rng = np.random.default_rng(chunk_seed(request.world_seed, request.key, vs) ^ 0xA11EA1)
        classes, stats.anneal_trace = anneal(classes, unary, rng, ANNEAL, REFINE_WEIGHTS, frozen)
        classes, removed = delete_floating(classes, anchors, frozen)  # moves may cut a piece loose
        stats.floating_removed += removed
    stats.violations_final = _count(en.violations(classes, anchors=anchors))
    return _apply_classes(classes, drawn.density, chans[2] > ch.ORE_LEVEL, drawn.depth, drawn.z, drawn.cover, vs)


# Violations weigh more than leaving the model's drawing by one likely class (about 2 nats), so at the
# schedule's end every fixable violation is fixed; the unary keeps untouched cells as drawn.
REFINE_WEIGHTS = en.EnergyWeights(thin_overhang=4.0, unheld_water=4.0, lava_water=4.0)
ANNEAL = AnnealSchedule(beta_start=0.5, beta_end=8.0, stages=4, sweeps=1)


def generate_chunk_with_stats(model: VoxelModel, request: VoxelChunkRequest) -> tuple[VoxelChunk, ChunkStats]:
    """The chunk and what its generation did (timings, energy counts); see ``generate_chunk``."""
    stats = ChunkStats()
    t0 = time.perf_counter()
    vs, device = request.voxel_size, model.device
    # The whole trained window even without neighbours: on a bare 32³ canvas the chunk's faces are the
    # canvas's edges, where the model changed 0.4 as many cells as inside (1.0 on the full window).
    margin = int(model.meta["margin"])
    z, y, x = canvas_axes(request.key, vs, margin)
    depth = terrain_depth(request, z, y, x)
    known, values = known_cells(request, depth, margin)
    spatial = np.concatenate([ch.tsdf(depth, vs)[None], known[None].astype(np.float32), values * known[None]])
    memory = None if request.memory is None else request.memory.to(device)
    cond = model.conditioning(request.style_weights, request.sliders).replace(spatial=_fold(spatial, device),
                                                                              memory=memory)
    weight, target = feathered(known, values)
    known_t = _fold(np.broadcast_to(weight, values.shape), device)
    values_t = _fold(target, device)
    noise = chunk_noise(model, request).to(device)
    settings = VOXEL_QUALITY[request.quality]
    folded = sample_canvas(model, cond, known_t, values_t, noise, settings)
    canvas = np.where(known[None], values, ch.unfold(folded)[0].cpu().numpy())
    centre = (slice(margin, margin + CHUNK),) * 3
    z_chunk, y_chunk, x_chunk = (axis[margin:margin + CHUNK] for axis in (z, y, x))
    resistance = passages.resistance_field(request.world_seed, z_chunk, y_chunk, x_chunk)
    joining = replace(passages.PASSAGES, reach=passages.PASSAGES.reach * 2 * request.passages)

    def opened(block: np.ndarray) -> np.ndarray:
        """The drawn caves grown through the model's haze, then joined by passages."""
        grown = ch.grown_caves(block, depth[centre], vs)
        return passages.joined_caves(grown, depth[centre], z_chunk, vs, resistance, joining)

    block = opened(canvas[(slice(None), *centre)])
    cover = model.cover(request.style_weights)
    drawn = _Drawn(block, *ch.decode(block, depth[centre], z_chunk, vs, cover), depth[centre], z_chunk, cover)
    stats.sample_s = time.perf_counter() - t0

    def redraw(mask: np.ndarray) -> np.ndarray:
        """The chunk's channels resampled where mask is set (SDEdit from the drawing, few steps)."""
        keep = known.copy()
        keep[centre] |= ~mask
        fixed = np.where(keep[None], canvas, 0.0).astype(np.float32)
        again = sample_canvas(model, cond, _fold(np.broadcast_to(keep, values.shape), device), _fold(fixed, device),
                              noise, REDRAW, start=_fold(canvas.astype(np.float32), device))
        return opened(np.where(keep[None], canvas, ch.unfold(again)[0].cpu().numpy())[(slice(None), *centre)])

    t1 = time.perf_counter()
    density, material = refine_chunk(drawn, request, stats, redraw)
    if request.locked is not None and request.current is not None:
        density[request.locked] = request.current.density[request.locked]
        material[request.locked] = request.current.material[request.locked]
    stats.refine_s = time.perf_counter() - t1
    return VoxelChunk(request.key, vs, density, material), stats


REDRAW = VoxelSampling(steps=2, sigma_max=1.0)  # SDEdit strength of a redraw: local, keeps the context


def generate_chunk(model: VoxelModel, request: VoxelChunkRequest) -> VoxelChunk:
    """One voxel chunk (density metres > 0 solid, palette materials) under the request's terrain.

    Deterministic per (world seed, chunk key, voxel size, neighbours, locked cells, style, sliders);
    outside the features the voxel surface is the heightfield's; locked cells are the current chunk's
    bit for bit. Raises ValueError for a bad request (see ``VoxelChunkRequest``).
    """
    return generate_chunk_with_stats(model, request)[0]
