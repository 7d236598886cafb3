"""The ``voxels`` and ``voxel_edit`` jobs: voxel chunks under a terrain the client sends, meshed chunk by chunk.

``voxels`` meshes a box of chunks (each chunk's mesh streams as a preview as soon as it is ready) and may
export the region (.vox, GLB). ``voxel_edit`` applies a brush stroke (carve, fill, regenerate) to the
chunks it reaches, stores them in the world folder's voxel store before answering (with the edit's number,
``edit_seq``, in the store's history), and streams the meshes that changed: those chunks and their -i, -j, -k
neighbours, whose meshes read their first layer. ``voxel_undo`` undoes or redoes stored edits by number (the
artist undid them in Blender) and streams the meshes that changed alike. ``memory: true`` (opt-in, the learned
source in a world folder) draws new chunks reading the world's voxel memory, written from its committed edits,
with the memory's slider estimate for each slider left unsent (``voxel_region.memory_source``).
Params are checked at submit time; sizes are bounded so a request cannot ask for unbounded work.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from itertools import product
from typing import Any, Callable, Collection

import numpy as np

from backend.editing.voxel_brushes import VoxelStroke, apply_stroke
from backend.export.voxels import VOX_FORMATS, export_voxel_region
from backend.generators.voxel_region import (CHUNK_SOURCES, DEFAULT_SOURCE, FINE, MESH_STYLES, ChunkSettings,
                                             VoxelRegion, memory_source)
from backend.meshing.voxels import Mesh
from backend.models.voxel import VoxelModel, VoxelReadout
from backend.voxels.chunk import CHUNK, MATERIAL, VOXEL_SIZES_M, ChunkKey
from backend.voxels.features import SLIDER_NAMES
from backend.voxels.lod import LodRings
from backend.world.voxel_store import VoxelStore

from .export_job import check_heights
from .params import check_keys
from .paths import Roots

MAX_AXIS_CHUNKS = 8  # per side of a region: 8 x 32 = 256 voxels, one .vox model
MAX_REGION_CHUNKS = 64  # chunks meshed by one job (a 4 x 4 x 2 region is 32)
MAX_KEY = 2**20  # |i|, |j|, |k|: a million chunks (32 km at 1 m) from the origin is far enough
MAX_TERRAIN_SIDE = 4097
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_FRAME_KEYS = {"voxel_size", "mesh", "cell_size", "world", "seed", "cave_density", "overhang", "passages", "cover",
               "source", "style_weights", "memory"}
_KEYS = {"voxels": _FRAME_KEYS | {"chunk_min", "chunk_count", "export", "lod"},
         "voxel_edit": _FRAME_KEYS | {"edit"}, "voxel_undo": _FRAME_KEYS | {"undo", "redo"}}

MeshSender = Callable[[int, int, ChunkKey, Mesh], None]  # (done, total, key, mesh) after each chunk


def _number(params: dict[str, Any], name: str, default: float, lo: float, hi: float) -> float:
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not lo <= value <= hi:
        raise ValueError(f"{name} must be a number in [{lo}, {hi}], got {value!r:.40}")
    return float(value)


def _key(value: Any, name: str, lo: int, hi: int) -> tuple[int, int, int]:
    if not isinstance(value, list) or len(value) != 3 or not all(
            isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi for v in value):
        raise ValueError(f"{name} must be [i, j, k] integers in [{lo}, {hi}], got {value!r:.80}")
    return value[0], value[1], value[2]


def _export(value: Any, roots: Roots) -> tuple[str, str, tuple[str, ...]] | None:
    if value is None:
        return None
    check_keys("voxels.export", value, {"out_dir", "name", "formats"})
    out_dir = str(roots.confine(value.get("out_dir"), "export.out_dir"))
    name = value.get("name", "caves")
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
        raise ValueError(f"export.name {name!r:.100} must be 1-100 letters, digits, '_', '-', '.', no path parts")
    formats = value.get("formats", list(VOX_FORMATS))
    if not isinstance(formats, list) or not formats or any(f not in VOX_FORMATS for f in formats):
        raise ValueError(f"export.formats must be a non-empty list from {list(VOX_FORMATS)}, got {formats!r:.80}")
    return out_dir, name, tuple(dict.fromkeys(formats))


@dataclass(frozen=True)
class VoxelRequest:
    settings: ChunkSettings
    mesh: str  # smooth | blocky
    source: str  # a name in CHUNK_SOURCES
    world: str | None  # folder holding the artist's voxel edits (voxels/{size}m/)
    keys: tuple[ChunkKey, ...]  # chunks to mesh, in streaming order
    stroke: VoxelStroke | None = None  # voxel_edit only
    export: tuple[str, str, tuple[str, ...]] | None = None  # (out_dir, name, formats)
    lod: LodRings = FINE  # the meshes' levels of detail
    history: tuple[tuple[int, ...], tuple[int, ...]] | None = None  # voxel_undo: (edits to undo, to redo)
    memory: bool = False  # new chunks read the world's voxel memory (the learned source in a world folder)

    @classmethod
    def from_params(cls, job: str, params: Any, arrays: dict[str, np.ndarray], roots: Roots) -> VoxelRequest:
        """ValueError (OutsideRoots for paths) names the bad field before anything runs."""
        check_keys(job, params, _KEYS[job])
        settings = _settings(params, arrays)
        mesh = params.get("mesh", "smooth")
        if mesh not in MESH_STYLES:
            raise ValueError(f"mesh must be one of {MESH_STYLES}, got {mesh!r:.40}")
        source = params.get("source", DEFAULT_SOURCE)
        if source not in CHUNK_SOURCES:
            raise ValueError(f"unknown chunk source {source!r:.40}; available: {sorted(CHUNK_SOURCES)}")
        world = str(roots.confine(params["world"], "world")) if params.get("world") is not None else None
        memory = _memory(params.get("memory", False), source, world)
        if job == "voxel_undo":
            history, keys = _history(params, world, settings.voxel_size)
            return cls(settings, mesh, source, world, keys, history=history, memory=memory)
        if job == "voxel_edit":
            if world is None:
                raise ValueError("voxel_edit needs a world folder to keep the edit in")
            stroke = VoxelStroke.from_params(params.get("edit"))
            return cls(settings, mesh, source, world, _edit_keys(stroke, settings.voxel_size), stroke, memory=memory)
        return cls(settings, mesh, source, world, _region_keys(params), None, _export(params.get("export"), roots),
                   _lod(params.get("lod")), memory=memory)


def _memory(value: Any, source: str, world: str | None) -> bool:
    """The opt-in to the world's voxel memory: the learned source, in a world folder (its edits write it)."""
    if not isinstance(value, bool):
        raise ValueError(f"memory must be true or false, got {value!r:.40}")
    if value and (source != "learned" or world is None):
        raise ValueError(f"memory needs the learned source and a world folder (its committed edits write the "
                         f"memory), got source {source!r:.40} and world {world!r:.100}")
    return value


def _settings(params: dict[str, Any], arrays: dict[str, np.ndarray]) -> ChunkSettings:
    voxel_size = params.get("voxel_size", 2.0)
    if voxel_size not in VOXEL_SIZES_M or isinstance(voxel_size, bool):
        raise ValueError(f"voxel_size must be one of {VOXEL_SIZES_M} metres, got {voxel_size!r:.40}")
    heights = check_heights(arrays)
    if max(heights.shape) > MAX_TERRAIN_SIDE:
        raise ValueError(f"heights may be at most {MAX_TERRAIN_SIDE} a side, got {heights.shape}")
    cell_size = _number(params, "cell_size", math.nan, 1e-3, 1e5)
    seed = params.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise ValueError(f"seed must be an integer in [0, 2^63), got {seed!r:.40}")
    cover = params.get("cover", "grass")
    if cover not in MATERIAL or MATERIAL[cover] == 0:
        raise ValueError(f"cover must be a solid palette material, got {cover!r:.40}")
    # an unsent slider is unset: the model's null, or the memory's estimate in a world with memory
    cave_density, overhang = (_number(params, n, 0.5, 0, 1) if n in params else None for n in SLIDER_NAMES)
    passages = _number(params, "passages", ChunkSettings.passages, 0, 1)
    return ChunkSettings(heights, cell_size, float(voxel_size), seed, cave_density, overhang, cover,
                         _style_weights(params.get("style_weights", {})), passages)


def _style_weights(value: Any) -> tuple[tuple[str, float], ...]:
    """The terrain's style mix for the chunk source: up to 16 names with weights >= 0 (the source checks the names)."""
    if not isinstance(value, dict) or len(value) > 16 or not all(
            isinstance(k, str) and len(k) <= 64 and isinstance(w, (int, float)) and not isinstance(w, bool)
            and math.isfinite(w) and w >= 0 for k, w in value.items()):
        raise ValueError(f"style_weights must map up to 16 style names to weights >= 0, got {value!r:.100}")
    return tuple(sorted((k, float(w)) for k, w in value.items()))


def _lod(value: Any) -> LodRings:
    """{"focus": [i, j, k], "radius": chunks}: chunks farther than radius from focus one level coarser per ring
    (``voxels.lod``); absent: all at full detail."""
    if value is None:
        return FINE
    check_keys("voxels.lod", value, {"focus", "radius"})
    focus = ChunkKey(*_key(value.get("focus"), "lod.focus", -MAX_KEY, MAX_KEY))
    radius = value.get("radius")
    if isinstance(radius, bool) or not isinstance(radius, int) or not 0 <= radius <= MAX_AXIS_CHUNKS:
        raise ValueError(f"lod.radius must be an integer in [0, {MAX_AXIS_CHUNKS}] chunks, got {radius!r:.40}")
    return LodRings(focus, radius)


def _history(params: dict[str, Any], world: str | None,
             voxel_size: float) -> tuple[tuple[tuple[int, ...], tuple[int, ...]], tuple[ChunkKey, ...]]:
    """(undo, redo) edit numbers, checked against the world's voxel history, and the chunks to remesh."""
    if world is None:
        raise ValueError("voxel_undo needs the world folder the edits are kept in")
    store = VoxelStore(world, voxel_size)
    recorded = store.log()["edits"]
    seqs = {}
    for name in ("undo", "redo"):
        value = params.get(name, [])
        if not isinstance(value, list) or len(value) > 256 or not all(
                isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise ValueError(f"{name} must be a list of at most 256 edit numbers, got {value!r:.80}")
        missing = sorted({v for v in value if str(v) not in recorded})
        if missing:
            raise ValueError(f"{name}: the world keeps no voxel edits {missing[:10]} at {voxel_size:g} m")
        seqs[name] = tuple(value)
    history = (seqs["undo"], seqs["redo"])
    return history, _remesh_keys(_edit_chunks(store, *history))


def _region_keys(params: dict[str, Any]) -> tuple[ChunkKey, ...]:
    """The box's chunks, top layer first (the surface shows before the depths)."""
    i0, j0, k0 = _key(params.get("chunk_min"), "chunk_min", -MAX_KEY, MAX_KEY)
    ni, nj, nk = _key(params.get("chunk_count"), "chunk_count", 1, MAX_AXIS_CHUNKS)
    if ni * nj * nk > MAX_REGION_CHUNKS:
        raise ValueError(f"a region may hold at most {MAX_REGION_CHUNKS} chunks, got {ni} x {nj} x {nk} = "
                         f"{ni * nj * nk}: ask for it in parts")
    return tuple(ChunkKey(i0 + i, j0 + j, k0 + k) for k, j, i in product(range(nk - 1, -1, -1), range(nj), range(ni)))


def _edit_keys(stroke: VoxelStroke, voxel_size: float) -> tuple[ChunkKey, ...]:
    """The chunks whose meshes the stroke changes: those it reaches and their -i, -j, -k neighbours."""
    return _remesh_keys(stroke.chunks(voxel_size))


def _remesh_keys(touched: Collection[ChunkKey]) -> tuple[ChunkKey, ...]:
    """The chunks whose meshes change with ``touched``: those and their -i, -j, -k neighbours."""
    remesh = {ChunkKey(c.i - di, c.j - dj, c.k - dk) for c in touched for di, dj, dk in product((0, 1), repeat=3)}
    if len(remesh) > MAX_REGION_CHUNKS:
        raise ValueError(f"the edit changes the meshes of {len(remesh)} chunks; at most {MAX_REGION_CHUNKS} at "
                         "once (shorten the stroke, make the radius smaller or undo fewer edits at once)")
    return tuple(sorted(remesh, key=lambda c: (-c.k, c.j, c.i)))


def _apply_stroke(region: VoxelRegion, stroke: VoxelStroke, touched: list[ChunkKey],
                  check_cancel: Callable[[], None]) -> int | None:
    """Edit the stroke's chunks, each stored before the next; the edit's number in the world's history."""
    before, after = {}, {}
    for key in touched:
        check_cancel()
        chunk, variant = region.get(key)
        before[key] = region.store.get(key) if region.store is not None else None
        variant += stroke.op == "regenerate"
        fresh = region.fresh(key, variant) if stroke.op == "regenerate" else None
        after[key] = (apply_stroke(chunk, stroke, fresh), variant)
        region.replace(*after[key])
    return region.store.record_edit(stroke.op, before, after) if region.store is not None else None


def _edit_chunks(store: VoxelStore, undo: tuple[int, ...], redo: tuple[int, ...]) -> list[ChunkKey]:
    """The chunks the edits numbered changed."""
    recorded = store.log()["edits"]
    return sorted({ChunkKey(*c) for seq in undo + redo for c in recorded[str(seq)]}, key=lambda c: (c.i, c.j, c.k))


def _apply_history(store: VoxelStore, undo: tuple[int, ...], redo: tuple[int, ...]) -> dict[str, list[int]]:
    """Undo (newest first), then redo (oldest first), each edit not already as asked."""
    undone = [seq for seq in sorted(undo, reverse=True) if store.set_edit(seq, active=False)]
    return {"undone": undone, "redone": [seq for seq in sorted(redo) if store.set_edit(seq, active=True)]}


def run_voxels(request: VoxelRequest, on_mesh: MeshSender, check_cancel: Callable[[int, int], None],
               voxel_model: VoxelModel | None = None,
               memory_models: tuple[VoxelModel, VoxelReadout] | None = None) -> dict[str, Any]:
    """Apply the stroke (if any, stored before meshing), mesh the chunks it or the region asks for and the kept
    chunks beside them whose meshes read theirs, export; the result's meta. ``voxel_model``: the shipped voxel
    model the learned source draws with (the server's ``ShippedModels.voxel``); ``memory_models``: the
    memory-conditioned voxel model and its slider readout, for a request with memory."""
    store = VoxelStore(request.world, request.settings.voxel_size) if request.world is not None else None
    if not request.memory:
        spec = CHUNK_SOURCES[request.source](voxel_model)
    elif memory_models is None or store is None:
        raise ValueError("memory needs the voxel memory models (voxel_memory.safetensors and voxel_readout."
                         "safetensors) and a world folder")
    else:
        spec = memory_source(*memory_models, store, request.settings)
    touched = (request.stroke.chunks(request.settings.voxel_size) if request.stroke is not None
               else _edit_chunks(store, *request.history) if request.history is not None and store is not None else [])
    edit = request.stroke is not None or request.history is not None
    makes = touched if edit and spec.keep else request.keys  # an edit of a kept source's chunks makes no others
    region = VoxelRegion(request.settings, spec, store, makes, request.lod)
    done_meta: dict[str, Any] = {"edited": [[k.i, k.j, k.k] for k in touched]}
    if request.stroke is not None:
        done_meta["edit_seq"] = _apply_stroke(region, request.stroke, touched, lambda: check_cancel(0, len(touched)))
    if request.history is not None and store is not None:
        done_meta.update(_apply_history(store, *request.history))
    keys = [k for k in request.keys if k in region.makes or region.held(k) is not None]
    if request.stroke is None and request.history is None:  # an edit's keys hold its chunks' neighbours below
        keys += region.border_chunks(keys)
    meshes, faces = [], 0
    for done, key in enumerate(keys):
        check_cancel(done, len(keys))
        mesh = region.mesh(key, request.mesh)
        meshes.append(mesh)
        faces += len(mesh[1])
        on_mesh(done + 1, len(keys), key, mesh)
    files = []
    if request.export is not None:
        out_dir, name, formats = request.export
        files = [str(p) for p in export_voxel_region([region.chunk(k) for k in request.keys],
                                                     meshes[:len(request.keys)], out_dir, name, formats)]
    return {"chunks": [[k.i, k.j, k.k] for k in keys], "levels": [request.lod.level(k) for k in keys],
            **done_meta, "faces": faces, "mesh": request.mesh, "voxel_size": request.settings.voxel_size,
            "memory": request.memory,
            "chunk_size_m": CHUNK * request.settings.voxel_size, "source": request.source, "files": files}
