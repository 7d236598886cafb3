"""The ``export`` job: write a height grid the client sends as engine/DCC files via ``export_terrain``."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from backend.export import FORMATS, export_terrain
from backend.export.heightmaps import PRESET_NOTES
from backend.terrain import Heightfield

from .params import check_keys
from .paths import Roots

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")  # as export_terrain requires
_KEYS = {"out_dir", "formats", "name", "cell_size", "preset", "byte_order"}


def check_heights(arrays: dict[str, np.ndarray]) -> np.ndarray:
    """The submit's array ``heights``: (H, W) finite float metres, as float32; ValueError says what is wrong."""
    if "heights" not in arrays:
        raise ValueError("the job needs an array named 'heights' (H, W) float32 metres")
    heights = arrays["heights"]
    if heights.ndim != 2 or min(heights.shape) < 2:
        raise ValueError(f"heights must be (H, W) with H, W >= 2, got shape {heights.shape}")
    if not np.issubdtype(heights.dtype, np.floating):
        raise ValueError(f"heights must be floating point metres, got dtype {heights.dtype}")
    heights = np.ascontiguousarray(heights, dtype=np.float32)
    if not np.isfinite(heights).all():
        raise ValueError(f"heights contain {int((~np.isfinite(heights)).sum())} NaN or infinite values")
    return heights


@dataclass(frozen=True)
class ExportRequest:
    heights: np.ndarray  # (H, W) float32 metres, row 0 north
    out_dir: str
    formats: tuple[str, ...]
    name: str
    cell_size: float
    preset: str | None
    byte_order: Literal["little", "big"]

    @classmethod
    def from_params(cls, params: Any, arrays: dict[str, np.ndarray], roots: Roots) -> "ExportRequest":
        """Check everything that can be checked before the worker runs it; ValueError names the bad value.
        ``out_dir`` must lie inside ``roots``."""
        check_keys("export", params, _KEYS)
        out_dir = str(roots.confine(params.get("out_dir"), "out_dir"))
        formats = params.get("formats", ["png16"])
        if not isinstance(formats, list) or not formats or not all(isinstance(f, str) for f in formats):
            raise ValueError(f"formats must be a non-empty list of names, got {formats!r}")
        bad = [f for f in formats if f not in FORMATS]
        if bad:
            raise ValueError(f"unknown export formats {bad}; choose from {list(FORMATS)}")
        name = params.get("name", "terrain")
        if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
            raise ValueError(f"export name {name!r} must be 1-100 letters, digits, '_', '-', '.', no path parts")
        cell_size = params.get("cell_size")
        if isinstance(cell_size, bool) or not isinstance(cell_size, (int, float)) \
                or not math.isfinite(cell_size) or cell_size <= 0:
            raise ValueError(f"cell_size must be positive metres, got {cell_size!r}")
        preset = params.get("preset")
        if preset is not None and preset not in PRESET_NOTES:
            raise ValueError(f"unknown preset {preset!r:.40}; choose from {list(PRESET_NOTES)} or null")
        preset = None if preset == "none" else preset
        byte_order = params.get("byte_order", "little")
        if byte_order not in ("little", "big"):
            raise ValueError(f"byte_order must be 'little' or 'big', got {byte_order!r}")
        heights = check_heights(arrays)
        return cls(heights, out_dir, tuple(formats), name, float(cell_size), preset, byte_order)

    def run(self) -> list[Path]:
        hf = Heightfield(self.heights, self.cell_size)
        return export_terrain(hf, self.out_dir, self.formats, name=self.name, preset=self.preset,
                              byte_order=self.byte_order)
