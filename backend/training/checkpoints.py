"""Checkpoints without pickle: safetensors for tensors, JSON for everything else.

Inference files hold the (EMA) denoiser's weights plus, in the safetensors metadata, the JSON
needed to rebuild it; resume files add the optimizer state so training continues bit for bit.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor

from backend.diffusion.preconditioning import Denoiser
from backend.memory.pluto import MemoryDenoiser, Pluto, PlutoConfig
from backend.networks.unet import UNet, UNetConfig

INFERENCE_FORMAT = "worldsculpt.denoiser.v1"


def _tensors(module: torch.nn.Module, prefix: str = "") -> dict[str, Tensor]:
    return {prefix + k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}


def _atomic_save(tensors: dict[str, Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    os.replace(tmp, path)  # a crash mid-write never leaves a truncated checkpoint behind


def save_inference(path: str | Path, denoiser: Denoiser, config_dict: dict[str, Any] | None = None) -> None:
    """Write the denoiser's weights (pass the EMA copy) and its rebuild recipe to one .safetensors file.

    config_dict is free-form JSON-serialisable metadata (dataset, normalisation, styles...).
    """
    meta = {
        "format": INFERENCE_FORMAT,
        "denoiser": json.dumps(denoiser.config_dict()),
        "config": json.dumps(config_dict or {}),
    }
    _atomic_save(_tensors(denoiser), Path(path), meta)


def read_metadata(path: str | Path) -> dict[str, Any]:
    """{'denoiser': {...}, 'config': {...}} from an inference file, without loading weights."""
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if meta.get("format") != INFERENCE_FORMAT:
        raise ValueError(f"{path} is not a {INFERENCE_FORMAT} file (format={meta.get('format')!r})")
    return {"denoiser": json.loads(meta["denoiser"]), "config": json.loads(meta["config"])}


def build_denoiser(recipe: dict[str, Any]) -> Denoiser:
    """A freshly initialised Denoiser from `Denoiser.config_dict()` output (with its memory when the recipe
    has one: a ``backend.memory.pluto.MemoryDenoiser``)."""
    denoiser = Denoiser(UNet(UNetConfig.from_dict(recipe["unet"])), sigma_data=float(recipe["sigma_data"]))
    if "pluto" not in recipe:
        return denoiser
    return MemoryDenoiser(denoiser, Pluto(PlutoConfig(**recipe["pluto"])))  # type: ignore[return-value]


def load_inference(path: str | Path, device: torch.device | str = "cpu") -> Denoiser:
    """Rebuild the denoiser from the file's metadata and load its weights exactly; eval mode."""
    denoiser = build_denoiser(read_metadata(path)["denoiser"])
    denoiser.load_state_dict(load_file(str(path), device="cpu"), strict=True)
    return denoiser.to(device).eval().requires_grad_(False)


@dataclass(frozen=True)
class LoadedModel:
    """An inference file's denoiser (eval mode) and its free-form config metadata, as serving uses them."""

    denoiser: Denoiser
    meta: dict[str, Any]
    sha256: str  # of the file: which weights made something (a world records it)

    @classmethod
    def load(cls, path: str | Path, device: torch.device | str = "cpu") -> Self:
        """2D convolution weights in channels-last layout: 10-20 % faster on CPU (one-channel inputs need no
        conversion), results within 2e-5 of the contiguous layout; other weights are left as they are."""
        denoiser = load_inference(path, device).to(memory_format=torch.channels_last)
        return cls(denoiser, read_metadata(path)["config"], file_sha256(path))

    @property
    def device(self) -> torch.device:
        return next(self.denoiser.parameters()).device


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def save_resume(directory: str | Path, step: int, tensors: dict[str, Tensor], state: dict[str, Any]) -> Path:
    """Write resume-<step>.safetensors, then resume.json pointing at it (the JSON is the commit)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    name = f"resume-{step:08d}.safetensors"
    _atomic_save(tensors, directory / name)
    index = directory / "resume.json"
    previous = json.loads(index.read_text())["tensors"] if index.exists() else None
    tmp = index.with_name("resume.json.tmp")
    tmp.write_text(json.dumps({"step": step, "tensors": name, **state}, indent=1))
    os.replace(tmp, index)
    if previous and previous != name:
        (directory / previous).unlink(missing_ok=True)
    return directory / name


def load_resume(directory: str | Path, device: torch.device | str = "cpu") -> tuple[dict[str, Tensor], dict[str, Any]] | None:
    """(tensors, state) of the last resume checkpoint in directory, or None if there is none."""
    index = Path(directory) / "resume.json"
    if not index.exists():
        return None
    state = json.loads(index.read_text())
    return load_file(str(Path(directory) / state["tensors"]), device=str(device)), state


def optimizer_to_flat(opt: torch.optim.Optimizer) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Split an optimizer state_dict into tensors ('opt.<param>.<key>') and JSON-able scalars."""
    sd = opt.state_dict()
    tensors: dict[str, Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, st in sd["state"].items():
        for key, val in st.items():
            if isinstance(val, Tensor):
                tensors[f"opt.{pid}.{key}"] = val.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(pid), {})[key] = val
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def optimizer_from_flat(opt: torch.optim.Optimizer, tensors: dict[str, Tensor], state: dict[str, Any]) -> None:
    per_param: dict[int, dict[str, Any]] = {}
    for name, val in tensors.items():
        if name.startswith("opt."):
            _, pid, key = name.split(".", 2)
            per_param.setdefault(int(pid), {})[key] = val
    for pid, scal in state["scalars"].items():
        per_param.setdefault(int(pid), {}).update(scal)
    opt.load_state_dict({"state": per_param, "param_groups": state["param_groups"]})
