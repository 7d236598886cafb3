"""The shipped models: where they are, which files they are, and loading them onto one device.

``models_dir`` is the one place that decides where the models are found. In order: the folder named by the
``WORLDSCULPT_MODELS_DIR`` environment variable (``serve --models-dir`` overrides it for one server); else
the models installed with the package (``worldsculpt_models``, the wheel's copy of ``models/``); else
``models/`` of the source checkout this module runs from.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from .erosion_surrogate import ErosionSurrogate
from .inference import read_metadata
from .profile import ProfileModel
from .terrain import TerrainModel
from .voxel import READOUT_FILE, VOXEL_FILE, VOXEL_MEMORY_FILE, VoxelModel, VoxelReadout

BASE_FILE, SUPERRES_FILE = "terrain_base.safetensors", "terrain_superres.safetensors"
MEMORY_FILE = "terrain_memory.safetensors"  # optional: the memory-conditioned base model (backend.memory)
PROFILE_FILE = "profile_1d.safetensors"  # optional: the curve guides' 1D model
EROSION_FILE = "erosion_surrogate.safetensors"  # optional: the learned erosion step (erosion_surrogate.py)
CLASSIFIER_FILE = "style_classifier.json"  # the style classifier (backend.metrics.style_classifier)


ENV_VAR = "WORLDSCULPT_MODELS_DIR"
PACKAGE = "worldsculpt_models"  # setup.py maps it onto the checkout's models/ folder


def models_dir() -> Path:
    """The folder the backend loads its learned models from (it may lack them: callers check and say so)."""
    chosen = os.environ.get(ENV_VAR)
    if chosen:
        return Path(chosen).expanduser().resolve()
    spec = importlib.util.find_spec(PACKAGE)
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(__file__).resolve().parents[2] / "models"


def describe_source() -> str:
    """Where models_dir() came from, for logs and error messages."""
    if os.environ.get(ENV_VAR):
        return f"{ENV_VAR}={os.environ[ENV_VAR]}"
    return "the installed package" if importlib.util.find_spec(PACKAGE) else "the source checkout"


MODELS_DIR = models_dir()


@dataclass(frozen=True)
class ShippedModels:
    """Every shipped model of one folder, loaded onto one device: what the learned generator holds."""

    base: TerrainModel
    superres: TerrainModel
    memory: TerrainModel | None  # for worlds with memory
    profile: ProfileModel | None  # for curve guides
    device: torch.device
    erosion: ErosionSurrogate | None = None  # for the erosion stage's surrogate and gated engines
    voxel: VoxelModel | None = None  # for the learned voxel chunk source (caves, overhangs, arches)
    voxel_memory: VoxelModel | None = None  # for voxel worlds with memory (with voxel_readout)
    voxel_readout: VoxelReadout | None = None

    @classmethod
    def load(cls, models_dir: str | Path = MODELS_DIR, device: str | torch.device = "cpu") -> ShippedModels:
        folder, device = Path(models_dir), torch.device(device)
        memory, profile, erosion = folder / MEMORY_FILE, folder / PROFILE_FILE, folder / EROSION_FILE
        with_memory = shipped_voxel_memory_present(folder)
        return cls(base=TerrainModel.load(folder / BASE_FILE, device),
                   superres=TerrainModel.load(folder / SUPERRES_FILE, device),
                   memory=TerrainModel.load(memory, device) if memory.is_file() else None,
                   profile=ProfileModel.load(profile, device) if profile.is_file() else None,
                   device=device, erosion=ErosionSurrogate.load(erosion, device) if erosion.is_file() else None,
                   voxel=VoxelModel.load(folder / VOXEL_FILE, device) if shipped_voxel_present(folder) else None,
                   voxel_memory=VoxelModel.load(folder / VOXEL_MEMORY_FILE, device) if with_memory else None,
                   voxel_readout=VoxelReadout.load(folder / READOUT_FILE, device) if with_memory else None)


def shipped_models_present(models_dir: str | Path = MODELS_DIR) -> bool:
    return all((Path(models_dir) / f).is_file() for f in (BASE_FILE, SUPERRES_FILE))


def shipped_profile_present(models_dir: str | Path = MODELS_DIR) -> bool:
    return (Path(models_dir) / PROFILE_FILE).is_file()


def shipped_voxel_present(models_dir: str | Path = MODELS_DIR) -> bool:
    return (Path(models_dir) / VOXEL_FILE).is_file()


def shipped_voxel_memory_present(models_dir: str | Path = MODELS_DIR) -> bool:
    """The voxel model, its memory-conditioned copy and the memory's slider readout are all there."""
    return all((Path(models_dir) / f).is_file() for f in (VOXEL_FILE, VOXEL_MEMORY_FILE, READOUT_FILE))


def load_voxel_model(folder: str | Path | None = None, device: str | torch.device = "cpu") -> VoxelModel:
    """The voxel model of ``folder`` (default ``models_dir()``) alone, for reports and tests; serving holds it in
    ``ShippedModels``. A clear error when it is missing."""
    path = Path(folder if folder is not None else models_dir()) / VOXEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no voxel model at {path}: train it with "
                                f"python -m backend.training.train_voxels configs/voxel_chunks.json")
    return VoxelModel.load(path, device)


def shipped_styles(models_dir: str | Path = MODELS_DIR) -> tuple[str, ...]:
    """Style names from the base model's metadata, read without loading the weights."""
    return tuple(read_metadata(Path(models_dir) / BASE_FILE)["config"]["style_names"])
