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
from backend.editing.guided import EditCallback
from backend.generators import GenerateRequest
from backend.generators.learned import DiffusionGenerator
from backend.terrain import Heightfield
from backend.world.store import CorruptFileError, TileMeta, WorldStore

from .export_job import check_heights
from .params import check_keys
from .paths import Roots

MAX_POINTS = 4096
MAX_WINDOW = 512  # cells per side of the edited window: bigger strokes would stall the live loop
MAX_RADIUS = 256.0
MAX_EDGE = 64.0  # cells over which a region's edit fades in from its rim
TILE = (0, 0)  # a Blender terrain is one tile of its world
_STYLE_KEYS = ("style", "style_weights", "sliders", "seed", "guidance")
_KEYS = {"cell_size", "steps", "commit", "world", *_STYLE_KEYS}  # every edit job's
_BRUSH_KEYS = {"kind", "stroke", "radius", "strength", "falloff", "height_m", "edge"}


def check_number(name: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not low <= value <= high:
        raise ValueError(f"{name} must be a number in [{low:g}, {high:g}], got {value!r:.40}")
    return float(value)


def check_points(name: str, value: Any, shape: tuple[int, int], columns: tuple[str, ...], low: int = 1) -> np.ndarray:
    """[[row, col, ...], ...] in grid cells -> (N, len(columns)) float64; every point on the grid.

    Columns after row and col must lie in [0, 1] (a pressure)."""
    if not isinstance(value, list) or not low <= len(value) <= MAX_POINTS:
        raise ValueError(f"{name} must be a list of {low}..{MAX_POINTS} [{', '.join(columns)}] points")
    bounds = [shape[0] - 1, shape[1] - 1] + [1] * (len(columns) - 2)
    for i, p in enumerate(value):
        if not isinstance(p, list) or len(p) != len(columns):
            raise ValueError(f"{name}[{i}] must be [{', '.join(columns)}], got {p!r:.100}")
        for column, v, high in zip(columns, p, bounds):
            check_number(f"{name}[{i}] {column}", v, 0, high)
    return np.array(value, dtype=np.float64)


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r:.40}")
    return value


def check_flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r:.40}")
    return value


def selection_mask(arrays: dict[str, np.ndarray], shape: tuple[int, int]) -> np.ndarray:
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
    kind = check_choice("kind", params.get("kind"), KINDS)
    falloff = check_choice("falloff", params.get("falloff", "smooth"), FALLOFFS)
    strength = check_number("strength", params.get("strength", 0.5), 0, 1)
    if "mask" in arrays:
        if "stroke" in params or kind not in REGION_KINDS:
            raise ValueError(f"a mask edits a region: kind must be one of {list(REGION_KINDS)} and no stroke given, "
                             f"got kind {kind!r}{' and a stroke' if 'stroke' in params else ''}")
        return RegionStroke(kind, selection_mask(arrays, shape), check_number("edge", params.get("edge", 8.0), 1, MAX_EDGE),
                            falloff, strength)
    height_m = params.get("height_m")
    points = check_points("stroke", params.get("stroke"), shape, ("row", "col", "pressure"))
    return Stroke(kind, points, check_number("radius", params.get("radius"), 0.5, MAX_RADIUS), strength, falloff,
                  None if height_m is None else check_number("height_m", height_m, -1e5, 1e5))


def _world(path: Any, shape: tuple[int, int], cell_size: float, roots: Roots) -> Path | None:
    """The world folder the stroke is logged in (inside ``roots``): an existing world must fit the terrain."""
    if path is None:
        return None
    folder = roots.confine(path, "world")
    if shape[0] != shape[1]:
        raise ValueError(f"world: only square terrains are stored as a world tile, got {shape}")
    if (folder / "world.json").is_file():
        try:
            info = WorldStore.open(folder).info
        except (CorruptFileError, OSError, ValueError) as exc:
            raise ValueError(f"world {path!r:.200} cannot be opened: {exc}") from None
        if (info.tile_size, info.cell_size) != (shape[0], cell_size):
            raise ValueError(f"world {path!r:.200} holds {info.tile_size}² tiles of {info.cell_size} m, "
                             f"not this {shape[0]}² terrain of {cell_size} m cells")
    return folder


def check_window(window: tuple[int, int, int, int], limit: int, what: str) -> None:
    r0, c0, r1, c1 = window
    h, w = r1 - r0, c1 - c0
    if max(h, w) > limit:
        raise ValueError(f"{what} reaches a {h}x{w} window; at most {limit} cells per side: {what} "
                         "must be shorter or narrower")


@dataclass(frozen=True)
class EditContext:
    """What every edit job (brush stroke, curve guide) carries besides its shape: the terrain it starts
    from, the style, the sampler settings and where a committed edit is logged."""

    job: str  # "brush" or "curve": the world tile's generator
    heights: np.ndarray  # (H, W) float32 metres: the whole terrain the edit starts from
    style: GenerateRequest  # style_weights, sliders, seed, guidance (the rest unused)
    cell_size: float
    settings: EditSettings
    commit: bool  # False: a live update of an edit still being made: fewer steps, not logged
    world: Path | None

    @classmethod
    def from_params(cls, job: str, params: Any, arrays: dict[str, np.ndarray], styles: tuple[str, ...],
                    own_keys: set[str], roots: Roots) -> EditContext:
        """Check the shared params (and that no unknown ones came); ``styles``: what the learned models know."""
        check_keys(job, params, own_keys | _KEYS)
        heights = check_heights(arrays)
        cell_size = check_number("cell_size", params.get("cell_size"), 1e-6, 1e6)
        steps = params.get("steps")
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= 50):
            raise ValueError(f"steps must be an integer in [1, 50] or null, got {steps!r:.40}")
        commit = check_flag("commit", params.get("commit", True))
        settings = EditSettings() if commit else LIVE_SETTINGS
        if steps is not None:
            settings = replace(settings, detail_steps=steps)
        style_params = {k: params[k] for k in _STYLE_KEYS if k in params}
        if "style" not in params and "style_weights" not in params:
            style_params["style"] = styles[0]
        style = GenerateRequest.from_params(style_params)
        unknown = sorted(set(style.style_weights) - set(styles))
        if unknown:
            raise ValueError(f"unknown style {unknown}; the learned models know {list(styles)}")
        return cls(job, heights, style, cell_size, settings, commit,
                   _world(params.get("world"), heights.shape, cell_size, roots))

    def record(self, kind: str, edit: Edit, params: dict[str, Any]) -> int:
        """Append the edit to the world's log and store the edited terrain; returns the edit's seq."""
        assert self.world is not None
        if (self.world / "world.json").is_file():
            store = WorldStore.open(self.world)
            store.remove_temp_files()  # left by writes a killed backend never finished
        else:
            store = WorldStore.create(self.world, self.style.seed, self.heights.shape[0], self.cell_size,
                                      tuple(self.style.style_weights))
        r0, c0, r1, c1 = edit.window
        before = self.heights[r0:r1, c0:c1]
        params = {**params, "style_weights": self.style.style_weights, "sliders": self.style.sliders,
                  "seed": self.style.seed, "guidance": self.style.guidance}
        record = store.append_edit(kind, TILE, edit.window, params,
                                   {"before": before, "after": edit.heights, "weight": edit.weight})
        after = self.heights.copy()
        after[r0:r1, c0:c1] = edit.heights
        store.put_tile(TILE, Heightfield(after, self.cell_size), TileMeta(source="edited", generator=self.job))
        return record.seq


@dataclass(frozen=True)
class BrushRequest:
    stroke: Stroke | RegionStroke
    edit: EditContext

    @property
    def kind(self) -> str:
        return self.stroke.kind

    @classmethod
    def from_params(cls, params: Any, arrays: dict[str, np.ndarray], styles: tuple[str, ...],
                    roots: Roots) -> BrushRequest:
        """Check everything before the worker runs it; ``styles``: what the learned models know."""
        edit = EditContext.from_params("brush", params, arrays, styles, _BRUSH_KEYS, roots)
        stroke = _stroke(params, arrays, edit.heights.shape)
        # the run aligns the window a little wider
        check_window(stroke.window(edit.heights.shape, edit.settings.margin, 1), MAX_WINDOW, "stroke")
        return cls(stroke, edit)

    def run(self, learned: DiffusionGenerator, on_step: EditCallback) -> tuple[Edit, dict[str, np.ndarray]]:
        """The edit and any arrays the result carries besides it (none for a stroke)."""
        e = self.edit
        return apply_stroke(learned.base, learned.superres, e.heights, self.stroke, e.style.style_weights,
                            e.style.sliders, e.style.guidance, e.cell_size, e.style.seed, e.settings, on_step), {}

    def record(self, edit: Edit) -> int:
        s = self.stroke
        params: dict[str, Any] = {"strength": s.strength, "falloff": s.falloff}
        if isinstance(s, RegionStroke):  # the region itself is kept as the window's weight delta
            params["edge"] = s.edge
        else:
            params.update(stroke=s.points.tolist(), radius=s.radius, height_m=s.height_m)
        return self.edit.record(s.kind, edit, params)
