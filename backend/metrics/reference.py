"""Reference style: the style mix and sliders an existing terrain resembles, to start new terrain from.

The style weights are the style classifier's (``style_classifier.py``) softmax over the realism features;
roughness and erosion strength come from its regression on the same features; elevation range and sea
level follow from the heights as the corpus defines them (log relief, fraction of the area below 0 m).
Large references are area-averaged to at most the classifier's map size first: the drainage and pit
features count cells, so they are only comparable at the resolution the classifier was fitted at.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backend.metrics.style_classifier import StyleClassifier, feature_vector
from backend.models.shipped import CLASSIFIER_FILE, MODELS_DIR
from backend.simulation.styles import elevation_slider
from backend.terrain import Heightfield

FEATURE_SIDE = 256  # the corpus maps' size: larger references are averaged down to it
MIN_SIDE = 16  # smaller grids have too few slopes and basins for the features to mean anything


@dataclass(frozen=True)
class StyleEstimate:
    style_weights: dict[str, float]  # sums to 1
    sliders: dict[str, float]  # the four sliders, [0, 1]
    relief_m: float  # max - min of the reference, metres
    feature_cell_size: float  # metres per cell of the grid the features were computed on


def averaged_down(hf: Heightfield, side: int = FEATURE_SIDE) -> Heightfield:
    """``hf`` area-averaged by the smallest integer factor that brings both sides to at most ``side``."""
    factor = math.ceil(max(hf.heights.shape) / side)
    if factor == 1:
        return hf
    h, w = (n // factor * factor for n in hf.heights.shape)
    blocks = hf.heights[:h, :w].astype(np.float64).reshape(h // factor, factor, w // factor, factor)
    return Heightfield(blocks.mean(axis=(1, 3)).astype(np.float32), hf.cell_size * factor)


def estimate_style(hf: Heightfield, classifier: StyleClassifier) -> StyleEstimate:
    """What ``hf`` looks like to the classifier; ValueError for grids too small or with holes."""
    if min(hf.heights.shape) < MIN_SIDE:
        raise ValueError(f"a reference terrain needs at least {MIN_SIDE}x{MIN_SIDE} cells, got {hf.heights.shape}")
    if not np.isfinite(hf.heights).all():
        raise ValueError(f"the reference has {int((~np.isfinite(hf.heights)).sum())} NaN or infinite heights "
                         "(no-data cells?): crop or fill them first")
    small = averaged_down(hf)
    features = feature_vector(small)
    relief = float(np.ptp(hf.heights))
    sliders = {"elevation_range": elevation_slider(relief), "sea_level": float((hf.heights < 0).mean()),
               **classifier.slider_estimates(features)}
    return StyleEstimate(classifier.style_weights(features), sliders, relief, small.cell_size)


def load_classifier(path: str | Path = MODELS_DIR / CLASSIFIER_FILE) -> StyleClassifier:
    if not Path(path).is_file():
        raise FileNotFoundError(f"no style classifier at {path} (fit one: python -m backend.metrics.style_classifier)")
    return StyleClassifier.load(path)
