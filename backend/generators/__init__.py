"""Terrain generators: the shared interface, the registry, the learned models and the procedural baseline."""

import logging
from functools import partial
from pathlib import Path

from . import registry
from .base import Cancelled, GenerateRequest, Generator, StepCallback
from backend.models.shipped import (ENV_VAR, MODELS_DIR, describe_source, shipped_models_present,
                                    shipped_profile_present, shipped_styles, shipped_voxel_memory_present,
                                    shipped_voxel_present)

from .learned import DiffusionGenerator
from .procedural import STYLES, ProceduralGenerator


def use_models_dir(models_dir: str | Path = MODELS_DIR) -> bool:
    """(Re)register the "diffusion" generator for the weights in models_dir; False if they are absent."""
    registry.unregister("diffusion")
    if not shipped_models_present(models_dir):
        return False
    extras = frozenset(name for name, present in (("profile", shipped_profile_present(models_dir)),
                                                  ("voxel", shipped_voxel_present(models_dir)),
                                                  ("voxel_memory", shipped_voxel_memory_present(models_dir))) if present)
    registry.register(registry.GeneratorSpec("diffusion", shipped_styles(models_dir),
                                             partial(DiffusionGenerator, models_dir=models_dir), extras))
    return True


registry.register(registry.GeneratorSpec("procedural", tuple(STYLES), ProceduralGenerator))
if not use_models_dir():  # said once at start, and every result's meta names the generator that ran
    logging.getLogger(__name__).warning(
        "no learned models in %s (found through %s): only the procedural generator is available; "
        "point %s or `serve --models-dir` at the folder with terrain_base.safetensors",
        MODELS_DIR, describe_source(), ENV_VAR)

__all__ = ["STYLES", "Cancelled", "DiffusionGenerator", "GenerateRequest", "Generator", "ProceduralGenerator",
           "StepCallback", "registry", "use_models_dir"]
