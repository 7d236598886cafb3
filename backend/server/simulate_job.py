"""The ``simulate`` job: erode a terrain the client sends (all of it, or a selection) by a number of steps.

The steps are the mature erosion stage's process (stream power and hillslope diffusion) at the terrain's
own cell size, run by physics, the learned surrogate or gated (``simulation.surrogate_stage``); ``auto``
takes the surrogate where it applies (its cell size, a map big enough to pay) and physics elsewhere. Each
call's heights stream back as previews; cancelling stops between calls. The result carries the new
heights over the whole grid (outside the selection exactly the old ones) and three masks in [0, 1]:
``flow`` (log upstream area), ``deposition`` (where the land rose) and ``wear`` (where it was lowered).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np

from backend.models.erosion_surrogate import ErosionSurrogate
from backend.simulation.learned_steps import MATURE_STEP, drainage, log_cells
from backend.simulation.surrogate_stage import ENGINE_NOTES, run_stage

from .brush_job import selection_mask as selection
from .export_job import check_heights
from .params import check_keys

MAX_STEPS = 80  # eight mature stages: beyond, stream power without uplift has worn most land to its base
MAX_CELLS = 2048 * 2048
_KEYS = {"cell_size", "steps", "engine"}
MASK_NAMES = ("flow", "deposition", "wear")

# on_call(steps done, steps in all, heights [H, W] float32 so far): after each call; may raise to cancel.
SimulateCallback = Callable[[int, int, np.ndarray], None]


@dataclass(frozen=True)
class SimulateRequest:
    heights: np.ndarray  # (H, W) float32 metres
    mask: np.ndarray | None  # (H, W) in [0, 1]: how much of the change each cell takes; None: all of it
    cell_size: float
    steps: int
    engine: str  # a key of ENGINE_NOTES: "auto" or one of the engines

    @classmethod
    def from_params(cls, params: Any, arrays: dict[str, np.ndarray]) -> SimulateRequest:
        """ValueError names the offending field and value."""
        check_keys("simulate", params, _KEYS)
        heights = check_heights(arrays)
        if heights.size > MAX_CELLS:
            raise ValueError(f"heights {heights.shape} exceed {MAX_CELLS} cells (2048 x 2048)")
        cell = params.get("cell_size")
        if isinstance(cell, bool) or not isinstance(cell, (int, float)) or not math.isfinite(cell) or cell <= 0:
            raise ValueError(f"cell_size must be a positive number of metres, got {cell!r:.40}")
        steps = params.get("steps", 10)
        if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS:
            raise ValueError(f"steps must be an integer in [1, {MAX_STEPS}], got {steps!r:.40}")
        engine = params.get("engine", "auto")
        if engine not in ENGINE_NOTES:
            raise ValueError(f"engine must be one of {list(ENGINE_NOTES)}, got {engine!r:.40}")
        mask = selection(arrays, heights.shape) if "mask" in arrays else None
        return cls(heights, mask, float(cell), steps, engine)

    def run(self, surrogate: ErosionSurrogate | None, on_call: SimulateCallback) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The result's meta (engine used, calls, tiles skipped and redone) and arrays (heights, masks)."""
        before = self.heights.astype(np.float64)
        weight = 1.0 if self.mask is None else self.mask.astype(np.float64)

        def blended(z: np.ndarray) -> np.ndarray:
            return (before + weight * (z - before)).astype(np.float32)

        process = replace(MATURE_STEP, steps=self.steps)
        eroded, log = run_stage(before, self.cell_size, process, self.engine, surrogate,
                                lambda done, total, z: on_call(done, total, blended(z)))
        heights = blended(eroded)
        meta = {"engine": log.engine, "calls": log.calls, "tiles": log.tiles, "skipped": log.skipped,
                "fallback": log.fallback, "steps": self.steps, "mask_names": list(MASK_NAMES),
                "window": [0, 0, int(heights.shape[0]), int(heights.shape[1])]}
        return meta, {"heights": heights, "masks": self.masks(heights)}

    def masks(self, heights: np.ndarray) -> np.ndarray:
        """(H, W, 3) float32: flow, deposition, wear, each scaled to [0, 1] over the terrain."""
        change = heights.astype(np.float64) - self.heights
        area = drainage(heights.astype(np.float64), self.cell_size, MATURE_STEP, 0, resolve_sinks=False).area
        flow = log_cells(area, self.cell_size)
        layers = [flow, np.maximum(change, 0.0), np.maximum(-change, 0.0)]
        return np.stack([layer / max(float(layer.max()), 1e-9) for layer in layers], axis=-1).astype(np.float32)
