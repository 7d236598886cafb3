"""Voxel chunks of a region, from a pluggable chunk source and the artist's stored edits, and their meshes.

A chunk source is a function ``(key, settings, variant, neighbours) -> VoxelChunk``, deterministic in its
arguments: ``neighbours`` maps offsets (di, dj, dk), each -1..1, to the chunks around ``key`` that the region
already holds (made or stored), for a generator that outpaints from them. ``variant`` is 0 for a chunk's first
version and grows by one each time the artist regenerates part of it, so a source can draw another sample.
``CHUNK_SOURCES`` names the sources, each a ``ChunkSourceSpec`` made from the voxel model the server holds
(``ShippedModels.voxel``, None when it is absent): the featureless one (``voxelise_terrain``: the ground under
the heightfield, no caves) and the learned one (``voxel_chunks.generate_chunk``: caves, overhangs and arches
drawn by the voxel diffusion model, the default; it refuses to be made without the model). A source whose chunks depend on their neighbours, and so on the order they are made
in, is registered with ``keep=True``: each chunk it makes is stored in the world at once, so the world shows the
same chunk every time. A world with memory draws from ``memory_source``: the learned source with the
memory-conditioned voxel model, each chunk reading the memory its world's committed edits wrote and taking the
memory's slider estimate for every slider the artist left unset (``backend.world.voxel_memory.MemoryChunks``).

A chunk the world keeps (edited by the artist, or kept as made) comes from the ``VoxelStore`` exactly as stored;
the others come from the source. A region is told which chunks it may make (``makes``): a neighbour outside them
that the world does not keep is read as the featureless ground, so a region of n chunks costs n source calls,
not the n plus its rim; the chunks a kept source made earlier beside the region are remeshed with it
(``border_chunks``), so the seam between two regions closes once both exist. Each chunk is meshed with the first layer of its +i, +j and +k neighbours
(``meshing.voxels``), so neighbouring chunks' meshes meet without cracks. Blocky meshes read every chunk at its
level of detail (``lod``: ``voxels.lod.LodRings``, coarser away from a focus chunk), the neighbours' layers
included, so a coarse chunk meets a fine one without a gap too; smooth meshes sample every 2^level-th sample
and close their surface on a face toward another level (``_smooth_grid``).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product
from typing import Callable, Collection, Literal

import numpy as np

from backend.generators.voxel_chunks import VoxelChunkRequest, canvas_axes, generate_chunk, terrain_depth
from backend.meshing.voxels import Mesh, blocky_surface, smooth_surface
from backend.models.voxel import VoxelModel, VoxelReadout
from backend.voxels.chunk import CHUNK, MATERIAL, ChunkKey, VoxelChunk, terrain_heights_at, voxelise_terrain
from backend.voxels.features import SLIDER_NAMES
from backend.voxels.lod import LodRings, coarse_cells
from backend.world.voxel_memory import MemoryChunks, VoxelMemory
from backend.world.voxel_store import VoxelStore

MeshStyle = Literal["smooth", "blocky"]
# mesh style -> (label, how it is meshed): the add-on's Mesh menu (hello_reply)
MESH_STYLE_NOTES: dict[str, tuple[str, str]] = {
    "smooth": ("Smooth", "Marching cubes, materials blended per vertex"),
    "blocky": ("Blocky", "Greedy cubes, one material per face"),
}
MESH_STYLES: tuple[str, ...] = tuple(MESH_STYLE_NOTES)


@dataclass(frozen=True)
class ChunkSettings:
    """What a chunk source may use: the terrain above (in the terrain mesh's centred frame), the world's
    seed and the artist's feature sliders (None: unset, the model's null, or the memory's estimate in a world
    with memory)."""

    heights: np.ndarray  # (H, W) float32 metres, row 0 north
    cell_size: float  # metres between terrain samples
    voxel_size: float  # metres per voxel (one of VOXEL_SIZES_M)
    seed: int = 0
    cave_density: float | None = None  # 0..1: share of caves the artist asks for
    overhang: float | None = None  # 0..1: overhangs and arches
    cover: str = "grass"  # the top layer's material
    style_weights: tuple[tuple[str, float], ...] = ()  # the terrain style mix (name, weight); () = the source's default
    passages: float = VoxelChunkRequest.passages  # 0..1: how far passages join the drawn caves

    @property
    def grid_origin(self) -> tuple[float, float]:
        """(x, y) of terrain sample (0, 0): the terrain mesh is centred on its grid."""
        h, w = self.heights.shape
        return -(w - 1) / 2 * self.cell_size, (h - 1) / 2 * self.cell_size

    @property
    def sliders(self) -> dict[str, float]:
        """The sliders the artist set, by name."""
        return {name: getattr(self, name) for name in SLIDER_NAMES if getattr(self, name) is not None}

    def depth(self, key: ChunkKey) -> np.ndarray:
        """The terrain's depth (metres) at the chunk's cells, (z, row, col)."""
        return terrain_depth(self, *canvas_axes(key, self.voxel_size, 0))


Offset = tuple[int, int, int]
ChunkSource = Callable[[ChunkKey, ChunkSettings, int, dict[Offset, VoxelChunk]], VoxelChunk]


@dataclass(frozen=True)
class ChunkSourceSpec:
    make: ChunkSource
    keep: bool = False  # its chunks depend on their neighbours: store each one in the world as it is made


def featureless_chunk(key: ChunkKey, settings: ChunkSettings, variant: int,
                      neighbours: dict[Offset, VoxelChunk]) -> VoxelChunk:
    """The ground under the heightfield without caves (every variant the same; neighbours unused)."""
    return voxelise_terrain(settings.heights, settings.cell_size, settings.grid_origin, key, settings.voxel_size,
                            settings.cover)


VARIANT_SEED_STRIDE = 1_000_003  # a regenerated chunk's variant draws from another world seed


def learned_source(model: VoxelModel | None, memory: MemoryChunks | None = None) -> ChunkSourceSpec:
    """Caves, overhangs and arches drawn by ``model``, outpainting from the chunks around (kept as made: its
    chunks depend on their neighbours); with ``memory`` (``model`` then the memory-conditioned voxel model) each
    chunk reads it and the sliders left unset are its estimate."""
    if model is None:
        raise ValueError("the learned chunk source needs the voxel model (voxel_chunks.safetensors) beside the "
                         "terrain models; ask for source 'featureless' or add the model")

    def make(key: ChunkKey, settings: ChunkSettings, variant: int,
             neighbours: dict[Offset, VoxelChunk]) -> VoxelChunk:
        tokens, sliders = (None, settings.sliders) if memory is None else memory.condition(key, settings.sliders)
        request = VoxelChunkRequest(settings.heights, settings.cell_size, settings.grid_origin, key,
                                    settings.voxel_size, world_seed=settings.seed + VARIANT_SEED_STRIDE * variant,
                                    style_weights=dict(settings.style_weights) or {"alpine": 1.0},
                                    sliders=sliders, passages=settings.passages, neighbours=neighbours, memory=tokens)
        return generate_chunk(model, request)

    return ChunkSourceSpec(make, keep=True)


def memory_source(model: VoxelModel, readout: VoxelReadout, store: VoxelStore,
                  settings: ChunkSettings) -> ChunkSourceSpec:
    """The learned source of a world with memory: ``model`` (the memory-conditioned voxel model) reading the
    memory the world's committed voxel edits write (``store.committed()``, under the settings' terrain), and
    ``readout``'s slider estimate where the artist left a slider unset."""
    if "memory" not in model.meta:
        raise ValueError("a world with memory needs the memory-conditioned voxel model (voxel_memory.safetensors)")
    if readout.meta["memory_model"]["sha256"] != model.sha256:
        raise ValueError("the voxel memory's slider readout was trained on other memory weights than "
                         "voxel_memory.safetensors: train it again (configs/voxel_readout.json)")
    memory = VoxelMemory.from_edits(model.denoiser, settings.seed, store.committed(), settings.depth)
    return learned_source(model, MemoryChunks(memory, readout.readout, int(model.meta["margin"])))


# A source by name, made from the voxel model the server holds (None when it has none).
CHUNK_SOURCES: dict[str, Callable[[VoxelModel | None], ChunkSourceSpec]] = {
    "learned": learned_source,
    "featureless": lambda model: ChunkSourceSpec(featureless_chunk),
}
# source -> (label, what it draws): the add-on's Chunks menu (hello_reply), in CHUNK_SOURCES' order
SOURCE_NOTES: dict[str, tuple[str, str]] = {
    "learned": ("Generated caves", "Caves, overhangs and arches drawn by the voxel diffusion model"),
    "featureless": ("Ground only", "The ground under the terrain, for carving by hand"),
}
MODEL_SOURCES = frozenset({"learned"})  # the sources that need the voxel model
DEFAULT_SOURCE = "learned"
FINE = LodRings(ChunkKey(0, 0, 0), 2**40)  # every chunk at full detail
AIR_DENSITY = 1e30  # metres of air beyond a face closed at a level border: the cap lies in the face's plane


class VoxelRegion:
    """Chunks asked for by key, each made once (stored edit, else the source) and kept while the job runs."""

    def __init__(self, settings: ChunkSettings, source: ChunkSourceSpec, store: VoxelStore | None = None,
                 makes: Collection[ChunkKey] | None = None, lod: LodRings = FINE):
        self.settings, self.source, self.store, self.lod = settings, source, store, lod
        self.makes = None if makes is None else frozenset(makes)  # None: any chunk asked for
        self._chunks: dict[ChunkKey, tuple[VoxelChunk, int]] = {}
        self._absent: set[ChunkKey] = set()  # not in the store
        self._ground: dict[ChunkKey, VoxelChunk] = {}  # featureless stand-ins for neighbours not made here
        self._shown: dict[ChunkKey, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}  # blocky cells at their level

    def held(self, key: ChunkKey) -> tuple[VoxelChunk, int] | None:
        """(chunk, variant) if the region holds it or the world keeps it; the source is not asked."""
        if key not in self._chunks and key not in self._absent and self.store is not None:
            stored = self.store.get(key)
            if stored is None:
                self._absent.add(key)
            else:
                self._chunks[key] = stored
        return self._chunks.get(key)

    def get(self, key: ChunkKey) -> tuple[VoxelChunk, int]:
        """(chunk, variant): held, else made by the source (and stored at once for a kept source)."""
        held = self.held(key)
        if held is None:
            held = self._chunks[key] = (self.fresh(key, 0), 0)
            if self.source.keep and self.store is not None:
                self.store.put(*held)
        return held

    def neighbour(self, key: ChunkKey) -> VoxelChunk:
        """A chunk a mesh reads a layer of: made if the region may make it, else held, else the bare ground."""
        if self.makes is None or key in self.makes:
            return self.chunk(key)
        held = self.held(key)
        if held is not None:
            return held[0]
        if key not in self._ground:
            self._ground[key] = featureless_chunk(key, self.settings, 0, {})
        return self._ground[key]

    def border_chunks(self, keys: Collection[ChunkKey]) -> list[ChunkKey]:
        """Chunks the world keeps just below ``keys`` (-i, -j, -k side), outside them: their meshes read the
        first layer of chunks in ``keys``, so they are remeshed with them."""
        inside = set(keys)
        around = {ChunkKey(c.i - di, c.j - dj, c.k - dk) for c in inside for di, dj, dk in product((0, 1), repeat=3)}
        return sorted((c for c in around - inside if self.held(c) is not None), key=lambda c: (-c.k, c.j, c.i))

    def neighbours(self, key: ChunkKey) -> dict[Offset, VoxelChunk]:
        """The chunks around ``key`` the region holds or the world keeps (none is made for this)."""
        around = {}
        for offset in product((-1, 0, 1), repeat=3):
            held = self.held(ChunkKey(key.i + offset[0], key.j + offset[1], key.k + offset[2]))
            if offset != (0, 0, 0) and held is not None:
                around[offset] = held[0]
        return around

    def chunk(self, key: ChunkKey) -> VoxelChunk:
        return self.get(key)[0]

    def fresh(self, key: ChunkKey, variant: int) -> VoxelChunk:
        """What the source makes of the chunk at this variant (ignoring edits): 'regenerate' blends it in."""
        return self.source.make(key, self.settings, variant, self.neighbours(key))

    def replace(self, chunk: VoxelChunk, variant: int) -> None:
        """An edited chunk: stored durably first (when the region has a store), then used."""
        if self.store is not None:
            self.store.put(chunk, variant)
        self._chunks[chunk.key] = (chunk, variant)
        self._shown.pop(chunk.key, None)

    def padded(self, key: ChunkKey) -> tuple[np.ndarray, np.ndarray]:
        """(CHUNK + 1)³ density and material: the chunk and the first layer of its + neighbours."""
        density, material = self.padded_cells(key, lambda c: (self.neighbour(c).density, self.neighbour(c).material))
        return density, material

    def padded_cells(self, key: ChunkKey, cells: Callable[[ChunkKey], tuple[np.ndarray, ...]]) -> list[np.ndarray]:
        """(CHUNK + 1)³ arrays: ``cells`` of the chunk and of the first layer of its + neighbours."""
        n = CHUNK
        out: list[np.ndarray] = []
        for dk, dj, di in product((0, 1), repeat=3):
            parts = cells(ChunkKey(key.i + di, key.j + dj, key.k + dk))
            out = out or [np.empty((n + 1,) * 3, a.dtype) for a in parts]
            target = (slice(dk * n, n + dk), slice(dj * n, n + dj), slice(di * n, n + di))
            source = (slice(0, 1 if dk else n), slice(0, 1 if dj else n), slice(0, 1 if di else n))
            for whole, part in zip(out, parts):
                whole[target] = part[source]
        return out

    def shown(self, key: ChunkKey) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(solid, material, ground) of the chunk's cells at its level of detail, on its own grid (cached)."""
        if key not in self._shown:
            chunk = self.neighbour(key)
            ground = self._ground_samples(key, chunk.density)
            self._shown[key] = coarse_cells(chunk.solid, chunk.material, ground, self.lod.level(key))
        return self._shown[key]

    def _ground_samples(self, key: ChunkKey, density: np.ndarray) -> np.ndarray:
        """Bool of a cube of samples from the chunk's first (CHUNK or CHUNK + 1 a side): those as the featureless
        chunk has them (density = terrain height - z), i.e. ground the features and the artist left alone."""
        s = self.settings
        x0, y0, z0 = key.origin(s.voxel_size)
        steps = np.arange(len(density)) * s.voxel_size
        ground = terrain_heights_at(s.heights, s.cell_size, s.grid_origin, x0 + steps, y0 - steps)  # (rows, cols)
        return np.abs(density - (ground[None] - (z0 + steps)[:, None, None])) < 1e-4

    def _onto_ground(self, key: ChunkKey, ground: np.ndarray, vertices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Vertices on a grid edge between two ``ground`` samples lie on the terrain's surface: those on horizontal
        edges are moved vertically onto the heightfield (not left on the chord between the samples; vertical
        edges are exact already). Only z changes, as a function of the vertex's own x and y, so the surface stays
        a graph and two chunks move a shared vertex alike. Returns the vertices and which lie on the ground."""
        s, n = self.settings, CHUNK + 1
        x0, y0, z0 = key.origin(s.voxel_size)
        steps = np.arange(n) * s.voxel_size
        zrc = np.stack([vertices[:, 2] - z0, y0 - vertices[:, 1], vertices[:, 0] - x0], 1) / s.voxel_size
        on_axis = np.abs(zrc - np.rint(zrc)) < 1e-3
        out, on_ground = vertices.copy(), np.zeros(len(vertices), bool)
        at_sample = np.flatnonzero(on_axis.all(1))  # the surface passes through a sample of density 0
        on_ground[at_sample] = ground[tuple(np.rint(zrc[at_sample]).astype(np.int64).T)]
        for axis in range(3):  # z (exact), rows (y varies), columns (x varies)
            others = [a for a in range(3) if a != axis]
            pick = np.flatnonzero(~on_axis[:, axis] & on_axis[:, others[0]] & on_axis[:, others[1]])
            cells = np.rint(zrc[pick]).astype(np.int64)
            low = np.clip(np.floor(zrc[pick, axis]).astype(np.int64), 0, n - 2)
            ends = [cells.copy(), cells.copy()]
            ends[0][:, axis], ends[1][:, axis] = low, low + 1
            both = ground[tuple(ends[0].T)] & ground[tuple(ends[1].T)]
            pick, cells = pick[both], cells[both]
            on_ground[pick] = True
            if axis == 2:
                z = terrain_heights_at(s.heights, s.cell_size, s.grid_origin, vertices[pick, 0], y0 - steps)
                out[pick, 2] = z[cells[:, 1], np.arange(len(pick))]
            elif axis == 1:
                z = terrain_heights_at(s.heights, s.cell_size, s.grid_origin, x0 + steps, vertices[pick, 1])
                out[pick, 2] = z[np.arange(len(pick)), cells[:, 2]]
        return out, on_ground

    def _smooth_grid(self, key: ChunkKey, density: np.ndarray, material: np.ndarray, origin: tuple[float, float, float]
                     ) -> tuple[np.ndarray, np.ndarray, float, tuple[float, float, float]]:
        """(density, material, spacing, origin) of the samples a smooth mesh reads at the chunk's level: every
        2^level-th sample, and a layer of air beyond each face whose neighbour (meshed with the region) is at
        another level. Marching cubes then closes the surface on that face (a cap in the face's plane, its rim the
        surface's own crossing), so the coarse and the fine side each end in the shared plane and no gap opens
        between their crossings; where both sides are solid the two caps lie inside the ground."""
        level = self.lod.level(key)
        step = 2**level
        density, material = density[::step, ::step, ::step], material[::step, ::step, ::step]
        spacing = self.settings.voxel_size * step
        shift = np.zeros(3)  # grid (z, row, col) cells added before sample 0
        for axis, side in product(range(3), (-1, 1)):
            offset = [0, 0, 0]
            offset[axis] = side
            beside = ChunkKey(key.i + offset[2], key.j + offset[1], key.k + offset[0])
            if self.lod.level(beside) == level or (self.makes is not None and beside not in self.makes):
                continue  # the same level (meshes meet), or not meshed with this region (its face stays open)
            shape = list(density.shape)
            shape[axis] = 1
            air = np.full(shape, -AIR_DENSITY, np.float32), np.zeros(shape, np.uint8)
            density = np.concatenate([air[0], density] if side < 0 else [density, air[0]], axis)
            material = np.concatenate([air[1], material] if side < 0 else [material, air[1]], axis)
            shift[axis] += side < 0
        corner = (origin[0] - shift[2] * spacing, origin[1] + shift[1] * spacing, origin[2] - shift[0] * spacing)
        return density, material, spacing, corner

    def mesh(self, key: ChunkKey, style: MeshStyle) -> Mesh:
        """The chunk's surface in world metres, at the chunk's level of detail: smooth (per-vertex material) or
        blocky (per-quad material).

        The ground's surface shows the cover: a cover layer thinner than a voxel (1 m of grass under 2 m voxels)
        is missed by some samples, which would paint contour stripes of cover and subsoil."""
        origin, cover = key.origin(self.settings.voxel_size), MATERIAL[self.settings.cover]
        if style == "smooth":
            density, material = self.padded(key)
            ground = self._ground_samples(key, density)
            vertices, faces, vertex_material = smooth_surface(*self._smooth_grid(key, density, material, origin))
            vertices, on_ground = self._onto_ground(key, ground, vertices)
            vertex_material[on_ground] = cover
            return vertices, faces, vertex_material
        if style != "blocky":
            raise ValueError(f"mesh style must be one of {MESH_STYLES}, got {style!r}")
        solid, material, ground = self.padded_cells(key, self.shown)
        top = solid & ground & np.concatenate([~solid[1:], np.zeros_like(solid[:1])])  # ground under open sky
        material = np.where(top, cover, np.where(solid & (material == 0), MATERIAL["rock"], material))
        return blocky_surface(solid, material.astype(np.uint8), self.settings.voxel_size, origin)
