"""The ``curve`` job: a guide line on a terrain the client sends becomes a ridge, river or cliff.

Checked at submit like a brush stroke (bad values are ``bad_params`` naming the field), run by the worker
with the learned terrain models and the 1D profile model (``backend.editing.curves``); a committed curve
is logged in the world like a stroke. The result is the edited window plus the profile along the curve.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from backend.editing.curves import Curve, apply_curve
from backend.editing.guided import Edit, EditCallback
from backend.generators.learned import DiffusionGenerator
from backend.data.elevation_profiles import KINDS

from .brush_job import EditContext, check_choice, check_flag, check_number, check_points, check_window
from .paths import Roots

MAX_WIDTH = 256.0  # cells
MAX_WINDOW = 1024  # cells per side: a curve is one job, not a live stroke, so it may span a large terrain
_KEYS = {"kind", "curve", "width", "strength", "flip"}


def _curve_points(curve: Any, shape: tuple[int, int]) -> np.ndarray:
    """[[row, col], ...] in grid cells -> (N, 2) float64 without repeated points, at least two cells long."""
    points = check_points("curve", curve, shape, ("row", "col"), low=2)
    points = points[np.r_[True, np.linalg.norm(np.diff(points, axis=0), axis=1) > 0]]
    length = float(np.linalg.norm(np.diff(points, axis=0), axis=1).sum())
    if length < 2:
        raise ValueError(f"curve must be at least 2 cells long, got {length:.2f}")
    return points


@dataclass(frozen=True)
class CurveRequest:
    curve: Curve
    edit: EditContext

    @property
    def kind(self) -> str:
        return self.curve.kind

    @classmethod
    def from_params(cls, params: Any, arrays: dict[str, np.ndarray], styles: tuple[str, ...],
                    roots: Roots) -> CurveRequest:
        """Check everything before the worker runs it; ``styles``: what the learned models know."""
        edit = EditContext.from_params("curve", params, arrays, styles, _KEYS, roots)
        curve = Curve(check_choice("kind", params.get("kind"), KINDS),
                      _curve_points(params.get("curve"), edit.heights.shape),
                      check_number("width", params.get("width"), 1.0, MAX_WIDTH),
                      check_number("strength", params.get("strength", 0.5), 0, 1),
                      check_flag("flip", params.get("flip", False)))
        check_window(curve.window(edit.heights.shape, edit.settings.margin, 1), MAX_WINDOW, "curve")
        return cls(curve, edit)

    def run(self, learned: DiffusionGenerator, on_step: EditCallback) -> tuple[Edit, dict[str, np.ndarray]]:
        """The edit and the profile (L,) float32 metres along the curve, from its first point to its last."""
        if learned.profile is None:
            raise ValueError("the learned models have no profile model (profile_1d.safetensors)")
        e = self.edit
        edit, profile = apply_curve(learned.base, learned.superres, learned.profile, e.heights, self.curve,
                                    e.style.style_weights, e.style.sliders, e.style.guidance, e.cell_size,
                                    e.style.seed, e.settings, on_step)
        return edit, {"profile": profile.astype(np.float32)}

    def record(self, edit: Edit) -> int:
        c = self.curve
        return self.edit.record(c.kind, edit, {"curve": c.points.tolist(), "width": c.width,
                                               "strength": c.strength, "flip": c.flip})
