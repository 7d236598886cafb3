"""Generators by name. Entries carry their styles so ``hello`` can list them without loading weights."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .base import GenerateRequest, Generator


@dataclass(frozen=True)
class GeneratorSpec:
    name: str
    styles: tuple[str, ...]
    factory: Callable[[str], Generator]  # device ("cpu", "cuda") -> generator; may load weights
    extras: frozenset[str] = frozenset()  # optional models beside it, e.g. "profile" (curve guides)


_REGISTRY: dict[str, GeneratorSpec] = {}


def register(spec: GeneratorSpec) -> None:
    if spec.name in _REGISTRY:
        raise ValueError(f"generator {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def get(name: str) -> GeneratorSpec:
    if name not in _REGISTRY:
        raise ValueError(f"unknown generator {name!r}; available: {sorted(_REGISTRY)}")
    return _REGISTRY[name]


def default_name() -> str:
    """The generator a request gets when it names none: the learned one when its weights ship."""
    return "diffusion" if "diffusion" in _REGISTRY else "procedural"


def available() -> dict[str, list[str]]:
    """Generator name -> its style names (what ``hello_reply`` advertises)."""
    return {name: list(spec.styles) for name, spec in sorted(_REGISTRY.items())}


def check_request(request: GenerateRequest) -> None:
    """Raise ValueError if the request names a generator or style that is not available."""
    spec = get(request.generator)
    unknown = sorted(set(request.style_weights) - set(spec.styles))
    if unknown:
        raise ValueError(f"generator {spec.name!r} has no style(s) {unknown}; available: {list(spec.styles)}")
