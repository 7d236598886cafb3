"""The one in-memory terrain type every part of the backend passes around.

Heights are float32 metres on a regular grid; ``cell_size`` is metres per cell, so a grid of
shape (H, W) spans ``(W - 1) * cell_size`` metres east and ``(H - 1) * cell_size`` north.
Row 0 is the north edge, column 0 the west edge (image order: north up, x east).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Heightfield:
    heights: np.ndarray  # (H, W) float32, metres
    cell_size: float  # metres per cell
    masks: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (H, W) float32 in [0, 1]
    splat: np.ndarray | None = None  # (H, W, M) float32 material weights summing to 1
    splat_names: tuple[str, ...] = ()
    style: str = ""

    def __post_init__(self) -> None:
        self.heights = np.ascontiguousarray(self.heights, dtype=np.float32)
        if self.heights.ndim != 2:
            raise ValueError(f"heights must be 2D (H, W), got shape {self.heights.shape}")
        if not self.cell_size > 0:
            raise ValueError(f"cell_size must be positive metres, got {self.cell_size}")
        for name, mask in self.masks.items():
            if mask.shape != self.heights.shape:
                raise ValueError(f"mask {name!r} has shape {mask.shape}, heights {self.heights.shape}")

    @property
    def shape(self) -> tuple[int, int]:
        return self.heights.shape  # type: ignore[return-value]

    @property
    def extent_m(self) -> tuple[float, float]:
        """(east-west, north-south) size in metres, rounded to a nanometre: a 800 m world of 40 cells of
        800/39 m says 800.0, not 800.0000000000001."""
        h, w = self.shape
        return (round((w - 1) * self.cell_size, 9), round((h - 1) * self.cell_size, 9))
