"""Terrain generators: the shared interface, the registry, the learned models and the procedural baseline."""

from functools import partial
from pathlib import Path

from . import registry
from .base import Cancelled, GenerateRequest, Generator, StepCallback
from .learned import MODELS_DIR, DiffusionGenerator, shipped_models_present, shipped_styles
from .profiles import PROFILE_FILE
from .procedural import STYLES, ProceduralGenerator


def use_models_dir(models_dir: str | Path = MODELS_DIR) -> bool:
    """(Re)register the "diffusion" generator for the weights in models_dir; False if they are absent."""
    registry.unregister("diffusion")
    if not shipped_models_present(models_dir):
        return False
    extras = frozenset({"profile"} if (Path(models_dir) / PROFILE_FILE).is_file() else ())
    registry.register(registry.GeneratorSpec("diffusion", shipped_styles(models_dir),
                                             partial(DiffusionGenerator, models_dir=models_dir), extras))
    return True


registry.register(registry.GeneratorSpec("procedural", tuple(STYLES), ProceduralGenerator))
use_models_dir()

__all__ = ["STYLES", "Cancelled", "DiffusionGenerator", "GenerateRequest", "Generator", "ProceduralGenerator",
           "StepCallback", "registry", "use_models_dir"]
