"""The ``style_from`` job: the style mix and sliders of a reference terrain (``backend/metrics/reference.py``).

The reference is the array ``heights`` the client sends (a terrain object's mesh) or an elevation file the
backend reads (16-bit PNG, EXR, GeoTIFF, .npy: ``backend/data/importers.py``). What can be checked cheaply
(the keys, that the file exists, its type and its size from the header) is checked at submit; the file is
read by the worker, so a large GeoTIFF never stalls the socket loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from backend.data.importers import elevation_shape, read_elevation
from backend.metrics.reference import estimate_style
from backend.metrics.style_classifier import StyleClassifier
from backend.terrain import Heightfield

from .export_job import check_heights
from .params import check_keys
from .paths import Roots

MAX_SIDE = 8192  # cells per side of a reference file: 256 MiB of float32, read once
_KEYS = {"path", "cell_size", "height_m"}


def _positive(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number of metres or null, got {value!r:.40}")
    return float(value)


def _reference_file(path: Any, roots: Roots) -> Path:
    file = roots.confine(path, "path")
    if not file.is_file():
        raise ValueError(f"reference file {path!r} does not exist (the path is read on the backend's machine)")
    try:
        shape = elevation_shape(file)
    except Exception as exc:  # an unsupported type, a damaged or mislabelled file: say so, naming it
        raise ValueError(f"reference file {path!r} is not a readable elevation raster: {exc}") from exc
    if shape is not None and max(shape[:2]) > MAX_SIDE:
        raise ValueError(f"reference file {path!r} is {shape[0]}x{shape[1]}; at most {MAX_SIDE} cells per side: "
                         "crop or downsample it")
    return file


@dataclass(frozen=True)
class StyleFromRequest:
    heights: np.ndarray | None  # (H, W) float32 metres sent by the client, or None for a file
    path: Path | None
    cell_size: float | None  # metres per cell; a file may state its own (GeoTIFF)
    height_m: float | None  # a file's relief in metres when it stores normalised values (images); None: metres

    @classmethod
    def from_params(cls, params: Any, arrays: dict[str, np.ndarray], roots: Roots) -> StyleFromRequest:
        """ValueError names the offending field and value; ``path`` must lie inside ``roots``."""
        check_keys("style_from", params, _KEYS)
        cell_size, height_m = _positive("cell_size", params.get("cell_size")), _positive("height_m", params.get("height_m"))
        if ("path" in params) == ("heights" in arrays):
            raise ValueError("style_from needs either a file 'path' or an array 'heights', not "
                             + ("both" if "path" in params else "neither"))
        if "path" in params:
            return cls(None, _reference_file(params["path"], roots), cell_size, height_m)
        if cell_size is None:
            raise ValueError("cell_size (metres) is required with heights")
        return cls(check_heights(arrays), None, cell_size, height_m)

    def reference(self) -> Heightfield:
        """The reference in metres; a file's problems (no cell size, bad mode, unreadable) raise ValueError."""
        if self.path is None:
            hf = Heightfield(self.heights, self.cell_size)
        else:
            hf = read_elevation(self.path, self.cell_size)
            if max(hf.heights.shape) > MAX_SIDE:  # the header check could not see an EXR's size
                raise ValueError(f"{self.path} is {hf.heights.shape}; at most {MAX_SIDE} cells per side")
        if self.height_m is not None:
            lo, span = float(hf.heights.min()), float(np.ptp(hf.heights))
            hf = Heightfield(((hf.heights - lo) * (self.height_m / max(span, 1e-12))).astype(np.float32), hf.cell_size)
        return hf

    def run(self, classifier: StyleClassifier) -> dict[str, Any]:
        """The result's meta: style weights, sliders, relief and the reference's grid."""
        hf = self.reference()
        estimate = estimate_style(hf, classifier)
        return {"style_weights": estimate.style_weights, "sliders": estimate.sliders, "relief_m": estimate.relief_m,
                "shape": list(hf.heights.shape), "cell_size": float(hf.cell_size),
                "source": str(self.path) if self.path is not None else "heights"}
