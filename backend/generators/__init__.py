"""Terrain generators: the shared interface, the registry, and the procedural baseline."""

from . import registry
from .base import Cancelled, GenerateRequest, Generator, StepCallback
from .procedural import STYLES, ProceduralGenerator

registry.register(registry.GeneratorSpec("procedural", tuple(STYLES), ProceduralGenerator))

__all__ = ["STYLES", "Cancelled", "GenerateRequest", "Generator", "ProceduralGenerator", "StepCallback", "registry"]
