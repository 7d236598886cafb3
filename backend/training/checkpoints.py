"""Resume checkpoints without pickle: safetensors for tensors, JSON for everything else, so training
continues bit for bit. The inference files training ships are ``backend.models.inference``'s."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import Tensor

from backend.durable import write_bytes
from backend.models.inference import save_tensors


def save_resume(directory: str | Path, step: int, tensors: dict[str, Tensor], state: dict[str, Any]) -> Path:
    """Write resume-<step>.safetensors, then resume.json pointing at it (the JSON is the commit)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    name = f"resume-{step:08d}.safetensors"
    save_tensors(tensors, directory / name)
    index = directory / "resume.json"
    previous = json.loads(index.read_text())["tensors"] if index.exists() else None
    write_bytes(index, json.dumps({"step": step, "tensors": name, **state}, indent=1).encode())
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
