"""What every terrain generator implements, and the validated request it receives.

The procedural baseline and the diffusion models share this interface so the server runs any of
them the same way: one ``generate`` call, a per-step callback for progress, previews and
cancellation (the callback raises :class:`Cancelled` to stop the generator between steps).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import numpy as np

from backend.diffusion.samplers import Cancelled  # one exception for samplers and generators alike
from backend.simulation.landscape import EROSION_STAGES
from backend.simulation.surrogate_stage import ENGINE_NOTES
from backend.terrain import Heightfield

MIN_RESOLUTION, MAX_RESOLUTION = 16, 4096
MAX_STEPS = 1000
# quality -> (label, what it does): few-step sampling for the live loop, or the full sampler; the add-on's menu
QUALITY_NOTES: dict[str, tuple[str, str]] = {
    "interactive": ("Interactive", "Few sampler steps: fast enough to iterate live"),
    "full": ("Full", "The full sampler: slower, a little more detail"),
}
QUALITIES = tuple(QUALITY_NOTES)
SLIDER_NAMES = ("roughness", "erosion_strength", "elevation_range", "sea_level")
# Defaults when a slider is not sent; "sea_level" left out means "the style's own sea level".
SLIDER_DEFAULTS = {"roughness": 0.5, "erosion_strength": 0.3, "elevation_range": 1.0}

__all__ = ["Cancelled", "GenerateRequest", "Generator", "Interrupt", "StepCallback"]

# on_step(step, total, preview_heights_or_None); step counts from 1 to total; it may raise Cancelled.
StepCallback = Callable[[int, int, "np.ndarray | None"], None]
# interrupt(): polled inside long steps (a huge map's step takes seconds); it may raise Cancelled.
Interrupt = Callable[[], None]


@dataclass(frozen=True)
class GenerateRequest:
    """A generate job's parameters, checked once at submit time so the worker never sees bad input."""

    style_weights: dict[str, float]  # style name -> weight, normalised to sum 1
    sliders: dict[str, float] = field(default_factory=dict)  # SLIDER_NAMES -> [0, 1]
    seed: int = 0
    resolution: int = 256  # cells per side
    size_m: float = 4000.0  # world size east-west (and north-south), metres
    height_m: float = 1500.0  # elevation range, metres
    steps: int | None = None  # sampler steps; None = the generator's default
    guidance: float = 3.0  # classifier-free guidance scale (diffusion generators)
    generator: str = "procedural"
    quality: str = "interactive"  # one of QUALITIES (diffusion generators)
    erosion_stage: str = "light"  # a key of EROSION_STAGES: drainage carved after sampling (diffusion generators)
    masks: bool = False  # send material masks (backend.simulation.material) with the result
    erosion_engine: str = "auto"  # who runs the erosion stage: a key of surrogate_stage.ENGINE_NOTES

    @property
    def cell_size(self) -> float:
        """Metres per cell: ``resolution`` samples span ``size_m``."""
        return self.size_m / (self.resolution - 1)

    def slider(self, name: str, default: float) -> float:
        return self.sliders.get(name, SLIDER_DEFAULTS.get(name, default))

    @classmethod
    def from_params(cls, params: Any, default_generator: str = "procedural") -> "GenerateRequest":
        """Parse submit ``params`` (absent fields take the dataclass defaults); raises ValueError naming the
        offending field and value."""
        if not isinstance(params, dict):
            raise ValueError(f"params must be a map, got {type(params).__name__}")
        known = {"style", "style_weights", "sliders", "seed", "resolution", "size_m", "height_m",
                 "steps", "guidance", "generator", "quality", "erosion_stage", "masks", "erosion_engine"}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ValueError(f"unknown parameter(s) {unknown}; known: {sorted(known)}")
        steps = params.get("steps")
        return cls(
            style_weights=_style_weights(params),
            sliders=_sliders(params.get("sliders", {})),
            seed=_integer("seed", params.get("seed", cls.seed), 0, 2**63 - 1),
            resolution=_integer("resolution", params.get("resolution", cls.resolution), MIN_RESOLUTION, MAX_RESOLUTION),
            size_m=_number("size_m", params.get("size_m", cls.size_m), 1.0, 1e6),
            height_m=_number("height_m", params.get("height_m", cls.height_m), 0.1, 2e4),
            steps=None if steps is None else _integer("steps", steps, 1, MAX_STEPS),
            guidance=_number("guidance", params.get("guidance", cls.guidance), 0.0, 50.0),
            generator=_string("generator", params.get("generator", default_generator)),
            quality=_choice("quality", params.get("quality", cls.quality), QUALITIES),
            erosion_stage=_choice("erosion_stage", params.get("erosion_stage", cls.erosion_stage),
                                  tuple(EROSION_STAGES)),
            masks=_choice("masks", params.get("masks", cls.masks), (False, True)),
            erosion_engine=_choice("erosion_engine", params.get("erosion_engine", cls.erosion_engine),
                                   tuple(ENGINE_NOTES)),
        )


def _integer(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], got {value}")
    return value


def _number(name: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low:g}, {high:g}], got {value:g}")
    return float(value)


def _string(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    return value


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def _style_weights(params: dict[str, Any]) -> dict[str, float]:
    if "style" in params and "style_weights" in params:
        raise ValueError("give either 'style' or 'style_weights', not both")
    if "style_weights" not in params:
        return {_string("style", params.get("style", "alpine")): 1.0}
    weights = params["style_weights"]
    if not isinstance(weights, dict) or not weights:
        raise ValueError(f"style_weights must be a non-empty map of style -> weight, got {weights!r}")
    parsed = {_string("style name", k): _number(f"style_weights[{k!r}]", v, 0.0, 1e6) for k, v in weights.items()}
    total = sum(parsed.values())
    if total <= 0:
        raise ValueError(f"style_weights must not all be zero, got {weights!r}")
    return {k: v / total for k, v in parsed.items() if v > 0}


def _sliders(sliders: Any) -> dict[str, float]:
    if not isinstance(sliders, dict):
        raise ValueError(f"sliders must be a map, got {sliders!r}")
    unknown = sorted(set(sliders) - set(SLIDER_NAMES))
    if unknown:
        raise ValueError(f"unknown slider(s) {unknown}; known: {list(SLIDER_NAMES)}")
    return {k: _number(f"sliders[{k!r}]", v, 0.0, 1.0) for k, v in sliders.items()}


class Generator(Protocol):
    """A terrain generator bound to one device; the server's worker thread calls it."""

    name: str
    styles: tuple[str, ...]

    def generate(self, request: GenerateRequest, on_step: StepCallback,
                 interrupt: Interrupt | None = None) -> Heightfield:
        """Heights in metres, row 0 north; calls ``on_step`` after each step and ``interrupt`` within
        long ones (either may raise Cancelled)."""
        ...
