"""Tiles of an unbounded learned world on demand: stored ones from the store, the rest generated.

A tile (tx, ty) holds `tile_size` samples per side at finest-level cells
[tx * n, tx * n + n] x [ty * n, ty * n + n] (n = tile_size - 1, rows south, columns east), so
neighbours share their edge samples and meshes meet without gaps. A never-edited tile is a pure
function of (world seed, coords) through ``backend.world.region``: whatever order tiles are asked
in, they come out bit for bit the same. The base level is sampled per block of BLOCK_TILES² tiles (one
canvas with 1.5 windows of context): inside a block the base level has no borders at all, and blocks agree
closely on the cells they share.
Tiles an artist edited (source "edited" in the store) are known context: neighbours generated later
are inpainted around them.

Level of detail: lod 0 is the full tile; lod k keeps every factor**k-th sample (the coarse levels
of the same world), and a tile never generated at lod 0 is sampled only down to that level
(cheap far tiles for explore mode). Only lod-0 tiles are written to the store.

The world's generation settings (styles, sliders, guidance, relief, quality) live in
``generation.json`` next to ``world.json``: every tile of a world must be made the same way.

Memory (``backend.memory``): a world created with the memory model samples its base stage with it, every
base window reading the world's memory at its position. Only artist actions write the memory (the edit
log: brush strokes, and tiles the artist keeps with `commit`), so tiles stay order-independent.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import torch

from backend.durable import write_bytes
from backend.models.terrain import QUALITY, TerrainModel
from backend.simulation.finishing import finish, finish_for_styles
from backend.simulation.landscape import EROSION_STAGES, erode, stage_for_styles
from backend.terrain import Heightfield
from backend.world.cache import LRUCache
from backend.world.memory_state import WorldMemory
from backend.world.region import (ALIGN, Canvas, Known, Progress, Span, Stage, base_margin, level_spans, refine,
                                  sample_base, stages_for)
from backend.world.store import Coords, Tile, TileMeta, WorldStore, check_coords

GENERATION_FILE = "generation.json"
GENERATOR_NAME = "diffusion-world"
BLOCK_TILES = 2  # tiles per side that share one base-level canvas (no seam between them at all)
# Context each side of a tile that its erosion stage sees, in metres (64 cells at the models' 30 m). Stream
# power is not local (catchments, spill routes): on a 1024² map cut into 128² tiles eroded with this much
# context each, mature erosion's border steps were 1.13x those of the whole map's erosion with 32 cells, within
# 2 % from 64 on.
EROSION_MARGIN_M = 1920.0


@dataclass(frozen=True)
class WorldSettings:
    """How every tile of one world is generated; heights = (x + 1) / 2 * height_m for network-space x."""

    style_weights: dict[str, float]
    sliders: dict[str, float] = field(default_factory=dict)
    guidance: float = 3.0
    height_m: float = 1500.0
    quality: str = "interactive"
    steps: int | None = None  # base sampler steps; None = the quality's own
    erosion_stage: str = "off"  # a key of EROSION_STAGES at the finest level (lod 0); worlds made before it: off

    def __post_init__(self) -> None:
        if self.quality not in QUALITY:
            raise ValueError(f"quality must be one of {sorted(QUALITY)}, got {self.quality!r}")
        if not self.style_weights or any(not (math.isfinite(w) and w >= 0) for w in self.style_weights.values()):
            raise ValueError(f"style_weights must be non-empty and non-negative, got {self.style_weights!r}")
        if not (math.isfinite(self.height_m) and self.height_m > 0):
            raise ValueError(f"height_m must be positive metres, got {self.height_m!r}")
        if self.steps is not None and not 1 <= self.steps <= 1000:
            raise ValueError(f"steps must be in [1, 1000] or None, got {self.steps!r}")
        if self.erosion_stage not in EROSION_STAGES:
            raise ValueError(f"erosion_stage must be one of {sorted(EROSION_STAGES)}, got {self.erosion_stage!r}")

    def stages(self, levels: int) -> list[Stage]:
        """The base stage, then levels - 1 super-resolution stages, at this world's quality."""
        q = QUALITY[self.quality]
        return stages_for(replace(q, base_steps=self.steps or q.base_steps), levels)


def create_world(path: str | Path, seed: int, settings: WorldSettings, base: TerrainModel,
                 superres: TerrainModel, levels: int = 2, memory: TerrainModel | None = None) -> WorldStore:
    """A new world whose tiles are one base tile wide, refined by levels - 1 super-resolutions; with
    `memory` (the memory-conditioned base model) its base stage reads the world's memory."""
    if levels < 1:
        raise ValueError(f"levels must be >= 1, got {levels}")
    if memory is not None:
        _check_memory_model(memory, base)
    factor = superres.meta["factor"]
    n = base.meta["resolution"] * factor ** (levels - 1)
    cell = base.meta["cell_size_m"] / factor ** (levels - 1)
    store = WorldStore.create(path, seed, n + 1, cell, styles=sorted(settings.style_weights))
    doc = {"format": "worldsculpt.generation", "levels": levels, **asdict(settings),
           **({"memory": True} if memory is not None else {}),
           "models": made_with(base, superres, memory)}
    write_bytes(store.root / GENERATION_FILE, (json.dumps(doc, indent=2) + "\n").encode("utf-8"))
    return store


def made_with(base: TerrainModel, superres: TerrainModel, memory: TerrainModel | None) -> dict[str, str]:
    """SHA-256 of the weights whose samples a world's tiles are: other weights make tiles that do not join."""
    stage = {"base": memory.sha256} if memory is not None else {"base": base.sha256}
    return {**stage, "superres": superres.sha256}


def _check_memory_model(memory: TerrainModel, base: TerrainModel) -> None:
    if "memory" not in memory.meta:
        raise ValueError("the memory model must be terrain_memory.safetensors (a base model with memory)")
    for key in ("resolution", "cell_size_m", "style_names"):
        if memory.meta[key] != base.meta[key]:
            raise ValueError(f"the memory model's {key} {memory.meta[key]!r} differs from the base model's "
                             f"{base.meta[key]!r}")


class BlockContext(NamedTuple):
    """A block's base-level canvas: its cache key, world cells, reach (tiles) and the edited tiles there."""

    cache_key: tuple
    rows: Span
    cols: Span
    txs: range
    tys: range
    edited: list[tuple[int, int, np.ndarray]]


class TileWorld:
    """Tiles of one world folder, generated with the given models and kept in a bounded cache.

    `memory`: the memory-conditioned base model, needed by worlds created with it (ignored by others);
    ``read_memory=False`` samples such a world with the null memory instead (the reports' ablation).
    """

    def __init__(self, path: str | Path, base: TerrainModel, superres: TerrainModel, cache_tiles: int = 64,
                 memory: TerrainModel | None = None, read_memory: bool = True, block_tiles: int = BLOCK_TILES,
                 cache_blocks: int = 16):
        self.store = WorldStore.open(path)
        doc = json.loads((self.store.root / GENERATION_FILE).read_text())
        self.levels = int(doc.pop("levels"))
        doc.pop("format")
        uses_memory = bool(doc.pop("memory", False))
        recorded = doc.pop("models", None)  # absent in worlds made before it was recorded
        self.settings = WorldSettings(**doc)
        self.base, self.superres = base, superres
        self.memory: WorldMemory | None = None
        self.base_stage = base
        if uses_memory:
            if memory is None:
                raise ValueError(f"world {str(self.store.root)!r} was made with the memory model: "
                                 "load models/terrain_memory.safetensors")
            _check_memory_model(memory, base)
            self.base_stage = memory
            self.memory = WorldMemory.open(self.store, memory, self.settings.height_m)
        self.read_memory = read_memory
        loaded = made_with(base, superres, memory if uses_memory else None)
        self.other_models = sorted(k for k, v in (recorded or {}).items() if loaded.get(k) != v)
        self.factor = superres.meta["factor"]
        cells = self.store.tile_size - 1
        if cells % self.factor ** (self.levels - 1):
            raise ValueError(f"tile_size - 1 = {cells} is not divisible by {self.factor}**{self.levels - 1}")
        self.cells = cells
        self.cond = self.base_stage.conditioning(self.settings.style_weights, self.settings.sliders)
        self.erosion = stage_for_styles(self.settings.erosion_stage, self.settings.style_weights)
        self.finish = finish_for_styles(self.settings.style_weights)
        self.cache: LRUCache[Coords, Tile] = LRUCache(max_items=cache_tiles)
        if block_tiles < 1:
            raise ValueError(f"block_tiles must be >= 1, got {block_tiles}")
        self.block_tiles = block_tiles
        self.blocks: LRUCache[tuple, Canvas] = LRUCache(max_items=cache_blocks)
        # uneroded tiles by what they depend on: an eroded tile reads its 3 x 3 neighbourhood's
        self.sampled: LRUCache[tuple, np.ndarray] = LRUCache(max_items=max(16, cache_tiles // 2))

    def tile(self, coords: tuple[int, int], lod: int = 0, callback: Progress | None = None) -> np.ndarray:
        """Heights (metres) of tile `coords` at level of detail `lod`: (n / factor**lod + 1)² samples."""
        key = check_coords(coords)
        if not 0 <= lod < self.levels:
            raise ValueError(f"lod must be in [0, {self.levels - 1}] for this world, got {lod}")
        step = self.factor ** lod
        stored = self._stored(key)
        if stored is not None:
            return stored.field.heights[::step, ::step]
        if self.other_models:
            raise ValueError(f"world {str(self.store.root)!r} was made with other {' and '.join(self.other_models)} "
                             f"weights than the loaded ones: its stored tiles load as they are, but new tiles would "
                             f"not join them; serve it with the models it was made with (git history of models/)")
        heights = self._generate(key, self.levels - lod, callback)
        if lod == 0:
            tile = Tile(key, Heightfield(heights, self.store.cell_size),
                        TileMeta("generated", GENERATOR_NAME, self.settings.stages(1)[0].steps))
            self.store.put_tile(key, tile.field, tile.meta)
            self.cache.put(key, tile)
        return heights

    def commit(self, coords: tuple[int, int]) -> int:
        """The artist keeps tile `coords` as it is (generating it first if needed): logged as an edit, so the
        memory learns it, and stored as edited, so neighbours generated later continue it. Returns the seq."""
        key = check_coords(coords)
        heights = self.tile(key)
        n = self.store.tile_size
        record = self.store.append_edit("commit", key, (0, 0, n, n), {}, {"after": heights})
        tile = Tile(key, Heightfield(heights, self.store.cell_size),
                    TileMeta("edited", GENERATOR_NAME, self.settings.stages(1)[0].steps))
        self.store.put_tile(key, tile.field, tile.meta)
        self.cache.put(key, tile)
        if self.memory is not None:
            self.memory.sync()
        return record.seq

    def _edited(self, key: Coords) -> np.ndarray | None:
        """Heights of tile `key` if the artist edited it (what the memory reads as neighbourhood tokens)."""
        tile = self._stored(key)
        return tile.field.heights if tile is not None and tile.meta.source == "edited" else None

    def _stored(self, key: Coords) -> Tile | None:
        tile = self.cache.get(key)
        if tile is None and self.store.has_tile(key):
            tile = self.store.get_tile(key)
            if tile is not None:
                self.cache.put(key, tile)
        return tile

    def _generate(self, key: Coords, levels: int, callback: Progress | None) -> np.ndarray:
        """The tile sampled down to `levels` levels, then (at the finest level) through the erosion stage."""
        if levels < self.levels or self.erosion is None:
            return self._sampled(key, levels, callback)
        return self._eroded(key, callback)

    def _eroded(self, key: Coords, callback: Progress | None) -> np.ndarray:
        """The erosion stage over the uneroded world around the tile (EROSION_MARGIN_M each side), its centre.

        Stream power is not local, so the tile erodes with context; the context is made of the neighbours'
        uneroded tiles (``_sampled``, pure functions of their coordinates), not of the tile's own wider canvas:
        then every tile erodes the very same heights where their contexts overlap, and eroded borders read like
        interior lines. Mature erosion amplified the small differences between two tiles' own canvases into a
        visible seam (border steps 1.15x interior ones; 0.99 from the shared mosaic). Edited samples stay exact."""
        n, (tx, ty) = self.cells, key
        c = min(n, math.ceil(EROSION_MARGIN_M / self.store.cell_size))
        around = range(tx - 1, tx + 2), range(ty - 1, ty + 2)
        mosaic = stitch({(x, y): self._uneroded((x, y), callback) for y in around[1] for x in around[0]}, *around)
        eroded = erode(mosaic[n - c:2 * n + 1 + c, n - c:2 * n + 1 + c].astype(np.float64), self.store.cell_size,
                       self.erosion)
        eroded = finish(eroded, self.store.cell_size, self.finish, span=(0.0, self.settings.height_m))
        heights = eroded[c:c + n + 1, c:c + n + 1].astype(np.float32)
        known = self._known(*around, 1, self._edited_among(*around))  # edited neighbours' shared edges
        if known is None:
            return heights
        window = (slice(n, 2 * n + 1), slice(n, 2 * n + 1))
        return np.where(known.mask[window].numpy() == 1, known.values[window].numpy(), heights)

    def _uneroded(self, key: Coords, callback: Progress | None) -> np.ndarray:
        """Tile `key` as the world without the erosion stage makes it (an edited tile: the artist's heights)."""
        edited = self._edited(key)
        return edited if edited is not None else self._sampled(key, self.levels, callback)

    def _sampled(self, key: Coords, levels: int, callback: Progress | None) -> np.ndarray:
        """Sample the tile down to `levels` levels (network space -> metres); edited samples kept exactly.

        The base level comes from the tile's block canvas (``_block``), so tiles of one block share it
        exactly; each super-resolution runs on the tile's own canvas. Cached by everything it depends on."""
        step = self.factor ** (self.levels - levels)
        n = self.cells // step
        tx, ty = key
        rows, cols = (ty * n, ty * n + n + 1), (tx * n, tx * n + n + 1)
        context = self._block_context(key)
        cache_key = (key, levels, context.cache_key)
        cached = self.sampled.get(cache_key)
        if cached is not None:
            return cached
        spans = level_spans(rows, cols, levels, self.factor)
        canvas = self._block(context, spans[0], callback)
        known = self._known(range(tx - 2, tx + 3), range(ty - 2, ty + 3), step, [
            e for e in context.edited if abs(e[0] - tx) <= 2 and abs(e[1] - ty) <= 2])
        with torch.no_grad():
            x = refine(self.superres, canvas, spans, self.cond, self.settings.stages(levels)[1:], self.store.seed,
                       self._network_space(known), callback)
        heights = (x.cpu() + 1) / 2 * self.settings.height_m
        if known is not None:  # the round trip through network space is not exact: paste the metres
            r, c = rows[0] - known.rows[0], cols[0] - known.cols[0]
            window = (slice(r, r + n + 1), slice(c, c + n + 1))
            heights = torch.where(known.mask[window] == 1, known.values[window], heights)
        out = heights.numpy().astype(np.float32)
        self.sampled.put(cache_key, out)
        return out

    def _block_context(self, key: Coords) -> BlockContext:
        """What the base-level canvas of the block of `block_tiles`² tiles holding tile `key` depends on.

        A block is a pure function of (world seed, block coords, edited tiles within reach, memory state): its
        cache key holds all of them, so a later edit or memory write makes a fresh canvas."""
        b = self.block_tiles
        bx, by = key[0] // b, key[1] // b
        nb = self.cells // self.factor ** (self.levels - 1)  # base cells per tile
        rows, cols = (by * b * nb, (by + 1) * b * nb + 1), (bx * b * nb, (bx + 1) * b * nb + 1)
        reach = -(-(base_margin(self.base.meta["resolution"]) + ALIGN) // nb)  # tiles its canvas can reach beyond it
        txs, tys = range(bx * b - reach, (bx + 1) * b + reach), range(by * b - reach, (by + 1) * b + reach)
        edited = self._edited_among(txs, tys)
        if self.memory is not None:
            self.memory.sync()  # brush strokes logged since the last tile
        state = (self.memory.applied_seq, self.read_memory) if self.memory is not None else None
        return BlockContext(((bx, by), state, _fingerprint(edited)), rows, cols, txs, tys, edited)

    def _block(self, context: BlockContext, shown: tuple[Span, Span], callback: Progress | None) -> Canvas:
        """The block's base-level canvas (cached). Tiles of a block read one canvas, so at the base level their
        shared edges agree exactly; blocks are sampled with ``base_margin`` cells of context, so neighbouring
        blocks agree closely."""
        canvas = self.blocks.get(context.cache_key)
        if canvas is None:  # the known context is built only when the canvas has to be sampled
            window_memory = None
            if self.memory is not None:
                window_memory = self.memory.reader(self._edited, null=not self.read_memory)
            known = self._network_space(self._known(context.txs, context.tys, 1, context.edited))
            with torch.no_grad():
                canvas = sample_base(self.base_stage, self.cond, self.settings.guidance, self.settings.stages(1)[0],
                                     self.store.seed, context.rows, context.cols, known,
                                     self.factor ** (self.levels - 1), callback, window_memory=window_memory,
                                     shown=shown)
            self.blocks.put(context.cache_key, canvas)
        return canvas

    def _network_space(self, known: Known | None) -> Known | None:
        if known is None:
            return None
        return Known(known.rows, known.cols, known.values / self.settings.height_m * 2 - 1, known.mask)

    def _edited_among(self, txs: range, tys: range) -> list[tuple[int, int, np.ndarray]]:
        """(tx, ty, heights) of the edited tiles among txs x tys."""
        return [(tx, ty, h) for ty in tys for tx in txs if (h := self._edited((tx, ty))) is not None]

    def _known(self, txs: range, tys: range, step: int,
               edited: list[tuple[int, int, np.ndarray]] | None = None) -> Known | None:
        """Edited tiles among txs x tys (``_edited_among``, unless given), heights in metres, at the sampled
        level (every `step`-th finest sample); None when none of them is edited."""
        n = self.cells
        edited = self._edited_among(txs, tys) if edited is None else edited
        if not edited:
            return None
        values, mask = torch.zeros(len(tys) * n + 1, len(txs) * n + 1), torch.zeros(len(tys) * n + 1, len(txs) * n + 1)
        for tx, ty, h in edited:
            r, c = (ty - tys[0]) * n, (tx - txs[0]) * n
            values[r:r + n + 1, c:c + n + 1] = torch.from_numpy(h)
            mask[r:r + n + 1, c:c + n + 1] = 1
        values, mask, n = values[::step, ::step].contiguous(), mask[::step, ::step].contiguous(), n // step
        origin_r, origin_c = tys[0] * n, txs[0] * n
        return Known((origin_r, origin_r + values.shape[0]), (origin_c, origin_c + values.shape[1]), values, mask)


def _fingerprint(edited: list[tuple[int, int, np.ndarray]]) -> str | None:
    """What a canvas's known context is, bit for bit (part of the block cache's key): the edited tiles in
    reach, by coordinates and content."""
    if not edited:
        return None
    digest = hashlib.sha256()
    for tx, ty, h in edited:
        digest.update(repr((tx, ty, h.shape)).encode())
        digest.update(np.ascontiguousarray(h).tobytes())
    return digest.hexdigest()


def stitch(tiles: dict[tuple[int, int], np.ndarray], cols: range, rows: range) -> np.ndarray:
    """One map from tiles (tx in cols, ty in rows); shared edge samples come from the east/south tile."""
    n = next(iter(tiles.values())).shape[0] - 1
    out = np.zeros((len(rows) * n + 1, len(cols) * n + 1), np.float32)
    for j, ty in enumerate(rows):
        for i, tx in enumerate(cols):
            out[j * n:j * n + n + 1, i * n:i * n + n + 1] = tiles[(tx, ty)]
    return out


def edge_step_ratio(heights: np.ndarray, n: int) -> float:
    """Mean |east-west step| from column n (a tile's shared west edge, e.g. an edited neighbour's) into the
    tile over the mean step of the whole map: 1 = the edge is like anywhere else, a wall reads well above."""
    steps = np.abs(np.diff(heights, axis=1)).mean(axis=0)
    return float(steps[n] / steps.mean())


def seam_ratio(heights: np.ndarray, n: int, period: int = 1, borders: Callable[[int], bool] | None = None) -> float:
    """Mean |gradient| across tile borders (every n-th sample) over the mean elsewhere; ~1 = no seam.

    A border step is the difference between the last sample of one tile and the first one owned by
    the next, both ways (east-west and north-south). Only steps at the same phase modulo `period`
    (the super-resolution factor) are compared: upsampling makes gradients alternate with the
    position inside a coarse cell, and a border always falls on the same phase. `borders(j)` picks
    which borders count (j = 1, 2, ...: the border before the map's j-th tile row or column); the
    others count as neither border nor interior.
    """
    dx, dy = np.abs(np.diff(heights, axis=1)), np.abs(np.diff(heights, axis=0))
    all_x, all_y = _border_steps(dx.shape[1], n), _border_steps(dy.shape[0], n)
    border_x, border_y = _border_steps(dx.shape[1], n, borders), _border_steps(dy.shape[0], n, borders)
    same_x, same_y = _same_phase(dx.shape[1], n, period), _same_phase(dy.shape[0], n, period)
    border = np.concatenate([dx[:, border_x].ravel(), dy[border_y, :].ravel()])
    interior = np.concatenate([dx[:, same_x & ~all_x].ravel(), dy[same_y & ~all_y, :].ravel()])
    return float(border.mean() / interior.mean())


def _border_steps(steps: int, n: int, borders: Callable[[int], bool] | None = None) -> np.ndarray:
    """Step k is between samples k and k + 1: borders are k = j n - 1 (the map's outer edge is none)."""
    border = np.zeros(steps, bool)
    for k in range(n - 1, steps - 1, n):
        border[k] = borders is None or borders((k + 1) // n)
    return border


def _same_phase(steps: int, n: int, period: int) -> np.ndarray:
    return np.arange(steps) % period == (n - 1) % period
