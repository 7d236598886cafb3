"""Material masks for a generated terrain, sent with every generate result so that Blender can shade it.

Slope, flow and the splat weights of ``backend.simulation.artist_masks`` (rock, scree, soil, grass, sand, snow),
each (H, W) float32 in [0, 1], on the terrain's own grid. Flow is routed on a grid of at most
``FLOW_GRID`` cells a side and resampled, so big worlds pay a bounded cost (256²: ~0.07 s).
"""

from __future__ import annotations

import numpy as np
import torch
from backend.grids import slope_degrees, zoom
from backend.simulation.artist_masks import SPLAT_NAMES, flow_mask, splat_map
from backend.simulation.flow import drainage_area

FLOW_GRID = 128
SEA_LEVEL_M = 0.0  # heights are metres above the sea the water plane shows
SNOW_FRACTION = 0.75  # snow above this share of the terrain's relief, on slopes that hold it


def _flow(heights: np.ndarray, cell_size: float) -> np.ndarray:
    step = max(1, int(np.ceil(max(heights.shape) / FLOW_GRID)))
    coarse = heights[::step, ::step]
    area = drainage_area(torch.from_numpy(np.ascontiguousarray(coarse, dtype=np.float32))[None], cell_size * step)[0]
    flow = flow_mask(area.numpy(), cell_size * step)
    if step == 1:
        return flow
    return np.clip(zoom(flow, heights.shape[0], order=1), 0.0, 1.0).astype(np.float32)  # generated maps are square


def material_masks(heights: np.ndarray, cell_size: float) -> dict[str, np.ndarray]:
    """{"slope", "flow", *SPLAT_NAMES} -> (H, W) float32 in [0, 1]; the splat weights sum to 1."""
    heights = np.asarray(heights, dtype=np.float32)
    flow = _flow(heights, cell_size)
    lo, hi = float(heights.min()), float(heights.max())
    splat = splat_map(heights, cell_size, flow, np.zeros_like(heights), snow_line=lo + SNOW_FRACTION * (hi - lo),
                      sea_level=SEA_LEVEL_M)
    masks = {"slope": np.clip(slope_degrees(heights, cell_size) / 90.0, 0.0, 1.0).astype(np.float32), "flow": flow}
    masks.update({name: np.ascontiguousarray(splat[..., k]) for k, name in enumerate(SPLAT_NAMES)})
    return masks
