"""Terrain generators: the shared interface, the registry, the learned models and the procedural baseline."""

from functools import partial
from pathlib import Path

from . import registry
from .base import Cancelled, GenerateRequest, Generator, StepCallback
from backend.models.shipped import MODELS_DIR, shipped_models_present, shipped_profile_present, shipped_styles

from .learned import DiffusionGenerator
from .procedural import STYLES, ProceduralGenerator


def use_models_dir(models_dir: str | Path = MODELS_DIR) -> bool:
    """(Re)register the "diffusion" generator for the weights in models_dir; False if they are absent."""
    registry.unregister("diffusion")
    if not shipped_models_present(models_dir):
        return False
    extras = frozenset({"profile"} if shipped_profile_present(models_dir) else ())
    registry.register(registry.GeneratorSpec("diffusion", shipped_styles(models_dir),
                                             partial(DiffusionGenerator, models_dir=models_dir), extras))
    return True


registry.register(registry.GeneratorSpec("procedural", tuple(STYLES), ProceduralGenerator))
use_models_dir()

__all__ = ["STYLES", "Cancelled", "DiffusionGenerator", "GenerateRequest", "Generator", "ProceduralGenerator",
           "StepCallback", "registry", "use_models_dir"]
