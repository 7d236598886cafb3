"""The ``brush`` job: one stroke on a terrain the client sends, answered with the edited window.

The stroke is a pen path (``stroke`` points) or, for the edits that need no path (regenerate, style paint),
a region: an array ``mask`` on the terrain's grid (the artist's selection or vertex group).

Checked at submit (bad values are ``bad_params`` naming the field); run by the worker with the learned
models (``backend.editing``). A committed stroke is appended to the world's edit log and the edited
terrain written as the world's tile before the result is sent, so a backend restart loses nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from backend.editing import (FALLOFFS, KINDS, LIVE_SETTINGS, REGION_KINDS, Edit, EditSettings, RegionStroke, Stroke,
                             apply_stroke)
from backend.generators import GenerateRequest
from backend.generators.learned import TerrainModel
from backend.terrain import Heightfield
from backend.world.store import TileMeta, WorldStore

from .export_job import check_heights

MAX_POINTS = 4096
MAX_WINDOW = 512  # cells per side of the edited window: bigger strokes would stall the live loop
MAX_RADIUS = 256.0
MAX_EDGE = 64.0  # cells over which a region's edit fades in from its rim
TILE = (0, 0)  # a Blender terrain is one tile of its world
_STYLE_KEYS = ("style", "style_weights", "sliders", "seed", "guidance")
_KEYS = {"kind", "stroke", "radius", "strength", "falloff", "height_m", "cell_size", "steps", "commit", "world",
         "edge", *_STYLE_KEYS}


def _number(name: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not low <= value <= high:
        raise ValueError(f"{name} must be a number in [{low:g}, {high:g}], got {value!r}")
    return float(value)


def _points(stroke: Any, shape: tuple[int, int]) -> np.ndarray:
    """[[row, col, pressure], ...] in grid cells -> (N, 3) float64; every point on the grid."""
    if not isinstance(stroke, list) or not 1 <= len(stroke) <= MAX_POINTS:
        raise ValueError(f"stroke must be a list of 1..{MAX_POINTS} [row, col, pressure] points")
    for i, p in enumerate(stroke):
        if not isinstance(p, list) or len(p) != 3:
            raise ValueError(f"stroke[{i}] must be [row, col, pressure], got {p!r}")
        _number(f"stroke[{i}] row", p[0], 0, shape[0] - 1)
        _number(f"stroke[{i}] col", p[1], 0, shape[1] - 1)
        _number(f"stroke[{i}] pressure", p[2], 0, 1)
    return np.array(stroke, dtype=np.float64)


def _mask(arrays: dict[str, np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """The array ``mask``: the region on the terrain's grid, values in [0, 1] (bool and uint8 0/1 accepted)."""
    mask = arrays["mask"]
    if mask.shape != shape:
        raise ValueError(f"mask must have the heights' shape {shape}, got {mask.shape}")
    mask = mask.astype(np.float32)
    if not np.isfinite(mask).all() or mask.min() < 0 or mask.max() > 1:
        raise ValueError("mask values must be finite and in [0, 1]")
    if not (mask > 0).any():
        raise ValueError("mask selects nothing: select part of the terrain first")
    return mask


def _stroke(params: dict[str, Any], arrays: dict[str, np.ndarray], shape: tuple[int, int]) -> Stroke | RegionStroke:
    """A path stroke from ``stroke`` points, or a region stroke from the array ``mask`` (never both)."""
    kind = params.get("kind")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {list(KINDS)}, got {kind!r}")
    falloff = params.get("falloff", "smooth")
    if falloff not in FALLOFFS:
        raise ValueError(f"falloff must be one of {list(FALLOFFS)}, got {falloff!r}")
    strength = _number("strength", params.get("strength", 0.5), 0, 1)
    if "mask" in arrays:
        if "stroke" in params or kind not in REGION_KINDS:
            raise ValueError(f"a mask edits a region: kind must be one of {list(REGION_KINDS)} and no stroke given, "
                             f"got kind {kind!r}{' and a stroke' if 'stroke' in params else ''}")
        return RegionStroke(kind, _mask(arrays, shape), _number("edge", params.get("edge", 8.0), 1, MAX_EDGE),
                            falloff, strength)
    height_m = params.get("height_m")
    return Stroke(kind, _points(params.get("stroke"), shape), _number("radius", params.get("radius"), 0.5, MAX_RADIUS),
                  strength, falloff, None if height_m is None else _number("height_m", height_m, -1e5, 1e5))


def _world(path: Any, shape: tuple[int, int], cell_size: float) -> Path | None:
    """The world folder the stroke is logged in: an existing world must fit the terrain."""
    if path is None:
        return None
    if not isinstance(path, str) or not path:
        raise ValueError(f"world must be a folder path or null, got {path!r}")
    if shape[0] != shape[1]:
        raise ValueError(f"world: only square terrains are stored as a world tile, got {shape}")
    if (Path(path) / "world.json").is_file():
        info = WorldStore.open(path).info
        if (info.tile_size, info.cell_size) != (shape[0], cell_size):
            raise ValueError(f"world {path!r} holds {info.tile_size}² tiles of {info.cell_size} m, "
                             f"not this {shape[0]}² terrain of {cell_size} m cells")
    return Path(path)


@dataclass(frozen=True)
class BrushRequest:
    heights: np.ndarray  # (H, W) float32 metres: the whole terrain the stroke starts from
    stroke: Stroke | RegionStroke
    style: GenerateRequest  # style_weights, sliders, seed, guidance (the rest unused)
    cell_size: float
    settings: EditSettings
    commit: bool  # False: a live update of a stroke still being drawn: fewer steps, not logged
    world: Path | None

    @classmethod
    def from_params(cls, params: Any, arrays: dict[str, np.ndarray], styles: tuple[str, ...]) -> BrushRequest:
        """Check everything before the worker runs it; ``styles``: what the learned models know."""
        if not isinstance(params, dict):
            raise ValueError(f"brush params must be a map, got {type(params).__name__}")
        unknown = sorted(set(params) - _KEYS)
        if unknown:
            raise ValueError(f"unknown brush params {unknown}; accepted: {sorted(_KEYS)}")
        heights = check_heights(arrays)
        stroke = _stroke(params, arrays, heights.shape)
        cell_size = _number("cell_size", params.get("cell_size"), 1e-6, 1e6)
        steps = params.get("steps")
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= 50):
            raise ValueError(f"steps must be an integer in [1, 50] or null, got {steps!r}")
        commit = params.get("commit", True)
        if not isinstance(commit, bool):
            raise ValueError(f"commit must be true or false, got {commit!r}")
        settings = EditSettings() if commit else LIVE_SETTINGS
        if steps is not None:
            settings = replace(settings, detail_steps=steps)
        r0, c0, r1, c1 = stroke.window(heights.shape, settings.margin, 1)  # the run aligns it a little wider
        h, w = r1 - r0, c1 - c0
        if max(h, w) > MAX_WINDOW:
            raise ValueError(f"stroke reaches a {h}x{w} window; at most {MAX_WINDOW} cells per side: "
                             "split the stroke or use a smaller radius")
        style_params = {k: params[k] for k in _STYLE_KEYS if k in params}
        if "style" not in params and "style_weights" not in params:
            style_params["style"] = styles[0]
        style = GenerateRequest.from_params(style_params)
        unknown = sorted(set(style.style_weights) - set(styles))
        if unknown:
            raise ValueError(f"unknown style {unknown}; the learned models know {list(styles)}")
        return cls(heights, stroke, style, cell_size, settings, commit,
                   _world(params.get("world"), heights.shape, cell_size))

    def run(self, base: TerrainModel, superres: TerrainModel, on_step: Any) -> Edit:
        return apply_stroke(base, superres, self.heights, self.stroke, self.style.style_weights,
                            self.style.sliders, self.style.guidance, self.cell_size, self.style.seed,
                            self.settings, on_step)

    def record(self, edit: Edit) -> int:
        """Append the edit to the world's log and store the edited terrain; returns the edit's seq."""
        assert self.world is not None
        if (self.world / "world.json").is_file():
            store = WorldStore.open(self.world)
        else:
            store = WorldStore.create(self.world, self.style.seed, self.heights.shape[0], self.cell_size,
                                      tuple(self.style.style_weights))
        r0, c0, r1, c1 = edit.window
        before = self.heights[r0:r1, c0:c1]
        s = self.stroke
        params = {"strength": s.strength, "falloff": s.falloff, "style_weights": self.style.style_weights,
                  "sliders": self.style.sliders, "seed": self.style.seed, "guidance": self.style.guidance}
        if isinstance(s, RegionStroke):  # the region itself is kept as the window's weight delta
            params["edge"] = s.edge
        else:
            params.update(stroke=s.points.tolist(), radius=s.radius, height_m=s.height_m)
        record = store.append_edit(s.kind, TILE, edit.window, params,
                                   {"before": before, "after": edit.heights, "weight": edit.weight})
        after = self.heights.copy()
        after[r0:r1, c0:c1] = edit.heights
        store.put_tile(TILE, Heightfield(after, self.cell_size), TileMeta(source="edited", generator="brush"))
        return record.seq
