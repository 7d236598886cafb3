"""Inference files without pickle: one .safetensors file holds a denoiser's weights and, in its metadata,
the JSON needed to rebuild it plus free-form config (styles, normalisation, ...).

Training writes these files (``save_inference``); serving reads them (``LoadedModel``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor

from backend.diffusion.preconditioning import Denoiser
from backend.durable import atomic_write
from backend.memory.network import RECIPE_KEY, MemoryConfig, MemoryDenoiser, MemoryNetwork
from backend.networks.unet import UNet, UNetConfig

INFERENCE_FORMAT = "worldsculpt.denoiser.v1"


def module_tensors(module: torch.nn.Module, prefix: str = "") -> dict[str, Tensor]:
    """A module's state as contiguous CPU tensors named ``prefix + key``, ready for safetensors."""
    return {prefix + k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}


def save_tensors(tensors: dict[str, Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    """Write a .safetensors file durably: a crash mid-write never leaves a truncated file behind."""
    with atomic_write(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def save_inference(path: str | Path, denoiser: Denoiser, config_dict: dict[str, Any] | None = None) -> None:
    """Write the denoiser's weights (pass the EMA copy) and its rebuild recipe to one .safetensors file.

    config_dict is free-form JSON-serialisable metadata (dataset, normalisation, styles...).
    """
    meta = {
        "format": INFERENCE_FORMAT,
        "denoiser": json.dumps(denoiser.config_dict()),
        "config": json.dumps(config_dict or {}),
    }
    save_tensors(module_tensors(denoiser), Path(path), meta)


def read_format_metadata(path: str | Path, file_format: str) -> dict[str, str]:
    """A .safetensors file's metadata strings, without loading weights; ValueError unless it is ``file_format``."""
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if meta.get("format") != file_format:
        raise ValueError(f"{path} is not a {file_format} file (format={meta.get('format')!r})")
    return meta


def read_metadata(path: str | Path) -> dict[str, Any]:
    """{'denoiser': {...}, 'config': {...}} from an inference file, without loading weights."""
    meta = read_format_metadata(path, INFERENCE_FORMAT)
    return {"denoiser": json.loads(meta["denoiser"]), "config": json.loads(meta["config"])}


def build_denoiser(recipe: dict[str, Any]) -> Denoiser:
    """A freshly initialised Denoiser from `Denoiser.config_dict()` output (with its memory network when the
    recipe has one: a ``backend.memory.network.MemoryDenoiser``)."""
    denoiser = Denoiser(UNet(UNetConfig.from_dict(recipe["unet"])), sigma_data=float(recipe["sigma_data"]))
    if RECIPE_KEY not in recipe:
        return denoiser
    return MemoryDenoiser(denoiser, MemoryNetwork(MemoryConfig(**recipe[RECIPE_KEY])))  # type: ignore[return-value]


def load_inference(path: str | Path, device: torch.device | str = "cpu") -> Denoiser:
    """Rebuild the denoiser from the file's metadata and load its weights exactly; eval mode."""
    denoiser = build_denoiser(read_metadata(path)["denoiser"])
    denoiser.load_state_dict(load_file(str(path), device="cpu"), strict=True)
    return denoiser.to(device).eval().requires_grad_(False)


def serves_in_bfloat16(device: torch.device) -> bool:
    """Whether serving runs 2D U-Nets in bfloat16 here: on a CPU with AMX or AVX-512 bfloat16 instructions,
    where oneDNN's bfloat16 convolutions take half the float32 time for the terrain models (their outputs
    within 0.7 % of float32's; a CPU without them would emulate bfloat16, slower than float32). GPUs keep
    float32."""
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")  # torch.cpu's, absent from older releases
    return device.type == "cpu" and any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass(frozen=True)
class LoadedModel:
    """An inference file's denoiser (eval mode) and its free-form config metadata, as serving uses them."""

    denoiser: Denoiser
    meta: dict[str, Any]
    sha256: str  # of the file: which weights made something (a world records it)
    bfloat16_where_native: ClassVar[bool] = False

    @classmethod
    def load(cls, path: str | Path, device: torch.device | str = "cpu") -> Self:
        """2D convolution weights in channels-last layout: 10-20 % faster on CPU (one-channel inputs need no
        conversion), results within 2e-5 of the contiguous layout; other weights are left as they are. A class
        with ``bfloat16_where_native`` runs its 2D U-Nets' wide maps in bfloat16 on a CPU that has it natively
        (`serves_in_bfloat16`, `UNet.serve_wide_maps_in`): every load of it computes the same numbers."""
        denoiser = load_inference(path, device).to(memory_format=torch.channels_last)
        if cls.bfloat16_where_native and serves_in_bfloat16(torch.device(device)):
            for net in [m for m in denoiser.modules() if isinstance(m, UNet) and m.config.dims == 2]:
                net.serve_wide_maps_in(torch.bfloat16)
        return cls(denoiser, read_metadata(path)["config"], file_sha256(path))

    @property
    def device(self) -> torch.device:
        return next(self.denoiser.parameters()).device
