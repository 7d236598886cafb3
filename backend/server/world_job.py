"""The ``world_tiles`` job: tiles of an unbounded learned world folder, generated or read back.

Params are checked at submit time (bad ones are ``bad_params`` at once); the worker then opens the
world with the learned models it owns and returns every tile in one stacked array.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from backend.diffusion.samplers import Callback
from backend.generators import GenerateRequest, registry
from backend.world.cache import LRUCache
from backend.world.store import check_coords
from backend.world.tiles import GENERATION_FILE, TileWorld, WorldSettings, create_world

from .params import check_keys
from .paths import Roots

MAX_TILES = 64  # per job: the result is one frame of MAX_TILES * tile_size² float32
MAX_COORD = 2**31  # |tx|, |ty|: cell indices and seeds stay far inside int64
MAX_LOD = 8  # before a world exists its level count is unknown: lod is bounded (factor**lod stays small)
_KEYS = {"world", "tiles", "lod", "create", "commit"}
_CREATE_KEYS = {"seed", "style", "style_weights", "sliders", "guidance", "height_m", "quality", "steps", "erosion_stage",
                "memory"}


@dataclass(frozen=True)
class WorldCreate:
    """A new world's seed and generation settings (used only when the folder holds no world yet)."""

    seed: int
    settings: WorldSettings
    memory: bool = False  # the world's base stage reads its memory (needs models/terrain_memory.safetensors)


@dataclass(frozen=True)
class WorldTilesRequest:
    world: str  # folder holding world.json, or an absent/empty one when `create` is given
    tiles: tuple[tuple[int, int], ...]
    lod: int
    create: WorldCreate | None
    commit: bool = False  # the artist keeps the tiles: logged, stored as edited, written to the world's memory

    @classmethod
    def from_params(cls, params: Any, roots: Roots) -> WorldTilesRequest:
        """ValueError names the offending field and value; ``world`` must lie inside ``roots``."""
        check_keys("world_tiles", params, _KEYS)
        world = roots.confine(params.get("world"), "world")
        create = _create(params.get("create"))
        levels = _levels(world) if create is None else MAX_LOD + 1
        lod = params.get("lod", 0)
        if isinstance(lod, bool) or not isinstance(lod, int) or not 0 <= lod < levels:
            raise ValueError(f"lod must be an integer in [0, {levels - 1}], got {lod!r:.40}")
        commit = params.get("commit", False)
        if not isinstance(commit, bool) or (commit and lod != 0):
            raise ValueError(f"commit must be true or false (and only at lod 0), got {commit!r} at lod {lod}")
        return cls(str(world), _tiles(params.get("tiles")), lod, create, commit)


def _levels(root: Path) -> int:
    """The world's level count; a clear error when the folder is no world."""
    if not (root / "world.json").is_file():
        raise ValueError(f"no world at {str(root)!r} (missing world.json); send 'create' to make one")
    try:
        return int(json.loads((root / GENERATION_FILE).read_text())["levels"])
    except (OSError, KeyError, TypeError, ValueError) as e:
        raise ValueError(f"world {str(root)!r} has no readable {GENERATION_FILE} (not a learned world?): {e}") from e


def _tiles(tiles: Any) -> tuple[tuple[int, int], ...]:
    if not isinstance(tiles, list) or len(tiles) > MAX_TILES:
        raise ValueError(f"tiles must be a list of 0 to {MAX_TILES} [tx, ty] pairs, got {tiles!r:.200}")
    out = []
    for t in tiles:
        if not isinstance(t, (list, tuple)):
            raise ValueError(f"each tile must be [tx, ty], got {t!r:.100}")
        tx, ty = check_coords(t)
        if abs(tx) > MAX_COORD or abs(ty) > MAX_COORD:
            raise ValueError(f"tile coordinates must lie within +-{MAX_COORD}, got {t!r:.100}")
        out.append((tx, ty))
    return tuple(out)


def _create(create: Any) -> WorldCreate | None:
    if create is None:
        return None
    if not isinstance(create, dict):
        raise ValueError(f"create must be a map of world settings, got {create!r:.100}")
    unknown = sorted(set(create) - _CREATE_KEYS)
    if unknown:
        raise ValueError(f"unknown create settings {unknown}; accepted: {sorted(_CREATE_KEYS)}")
    memory = create.get("memory", False)
    if not isinstance(memory, bool):
        raise ValueError(f"create.memory must be true or false, got {memory!r:.40}")
    # unsent, the erosion stage is off, as in worlds made before it existed (the add-on sends its panel's)
    given = {"erosion_stage": WorldSettings.erosion_stage, **{k: v for k, v in create.items() if k != "memory"}}
    r = GenerateRequest.from_params(given, "diffusion")
    return WorldCreate(r.seed, WorldSettings(r.style_weights, r.sliders, r.guidance, r.height_m, r.quality, r.steps,
                                             r.erosion_stage), memory)


def check_available(request: WorldTilesRequest) -> None:
    """Raise ValueError when the learned models are not loaded or lack a requested style."""
    styles = registry.available().get("diffusion")
    if styles is None:
        raise ValueError("world_tiles needs the learned models (models/terrain_base.safetensors and "
                         "terrain_superres.safetensors): train them or start the backend with --models-dir")
    unknown = sorted(set(request.create.settings.style_weights) - set(styles)) if request.create else []
    if unknown:
        raise ValueError(f"the learned models have no style(s) {unknown}; available: {styles}")


class OpenWorlds:
    """The worker's open worlds (a few, least recently used dropped), each with its own tile cache."""

    def __init__(self, max_worlds: int = 4):
        self._worlds: LRUCache[Path, TileWorld] = LRUCache(max_items=max_worlds)

    def run(self, request: WorldTilesRequest, base: Any, superres: Any, callback: Callback,
            on_tile: Callable[[int, int], None], memory: Any = None) -> tuple[dict[str, Any], np.ndarray]:
        """(result meta, heights [N, S, S] float32 metres) for the request's tiles, in its order.
        No tiles: just the world's geometry (what a client needs before it can ask for the right ones).

        `memory`: the memory-conditioned base model, if loaded (worlds created with memory need it)."""
        world = self._open(request, base, superres, memory)
        if request.lod >= world.levels:
            raise ValueError(f"lod must be in [0, {world.levels - 1}] for this world, got {request.lod}")
        tiles = []
        for i, coords in enumerate(request.tiles):
            tiles.append(world.tile(coords, request.lod, callback))
            if request.commit:
                world.commit(coords)
            on_tile(i + 1, len(request.tiles))
        step = world.factor ** request.lod
        samples = (world.store.tile_size - 1) // step + 1
        meta = {"world": str(world.store.root), "tiles": [list(t) for t in request.tiles], "lod": request.lod,
                "samples": samples, "cell_size": world.store.cell_size * step,
                "tile_size_m": (world.store.tile_size - 1) * world.store.cell_size, "levels": world.levels,
                "seed": world.store.seed}
        return meta, np.stack(tiles) if tiles else np.zeros((0, samples, samples), np.float32)

    def _open(self, request: WorldTilesRequest, base: Any, superres: Any, memory: Any) -> TileWorld:
        root = Path(request.world).absolute()
        world = self._worlds.get(root)
        if world is None:
            if request.create is not None and not (root / "world.json").exists():
                if request.create.memory and memory is None:
                    raise ValueError("create.memory needs the memory model (models/terrain_memory.safetensors)")
                create_world(root, request.create.seed, request.create.settings, base, superres,
                             memory=memory if request.create.memory else None)
            world = TileWorld(root, base, superres, memory=memory)
            world.store.remove_temp_files()  # left by writes a killed backend never finished
            self._worlds.put(root, world)
        return world
