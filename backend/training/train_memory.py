"""Train the memory-conditioned base model: ``python -m backend.training.train_memory configs/memory_base.json``.

The model is the base terrain U-Net with cross-attention to memory tokens (``memory_dim`` = MemoryNetwork's
width) and the MemoryNetwork memory (``backend.memory``), trained together by the project's loop on walks over
large simulated maps (``backend.data.walks``) with ``backend.memory.loss.MemoryLoss``. It starts from a
shipped base model (``init_from``): every weight but the new cross-attention is copied, and the
cross-attention's output projections start at zero, so step 0 is exactly that base model and training
only has to learn what the memory adds. With ``freeze_base`` (the shipped setting) only the memory and
the cross-attention learn, as an adapter: the base model's prior stays as it was, and a step costs less
(no weight gradients for the rest of the U-Net), which is what makes training fit this CPU. The shipped file keeps the base model's serving metadata (style
and slider names, resolution, cell size), so it drops in as the base stage of a world.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from safetensors.torch import load_file

from backend.data.datasets import MapSet, load_maps
from backend.data.walks import WalkDataset
from backend.diffusion.loss import EDMLoss
from backend.diffusion.preconditioning import Denoiser
from backend.memory.loss import MemoryLoss
from backend.memory.network import RECIPE_KEY, MemoryConfig, MemoryDenoiser, MemoryNetwork
from backend.models.inference import file_sha256, read_metadata
from backend.networks.unet import UNet, UNetConfig
from backend.training.loop import TrainConfig, Trainer
from backend.training.train_terrain import train_and_ship, train_command

CROSS_ATTENTION = (".norm_x.", ".q_x.", ".kv_x.", ".proj_x.", "memory_emb.")  # what an adapter adds and trains


@dataclass
class MemoryRunConfig:
    corpus: list[str]  # large-map corpus folders (their "train" split)
    init_from: str  # the base model to start from, e.g. models/terrain_base.safetensors
    train: dict[str, Any]  # TrainConfig fields
    ship_to: str  # e.g. models/terrain_memory.safetensors
    memory: dict[str, Any] = field(default_factory=dict)  # MemoryConfig fields (tile_cells comes from the base)
    factor: int = 1  # corpus cells per base cell
    max_context: int = 6  # tiles per walk
    level_std: float | None = None  # tile-to-tile level std of the walks (backend.data.walks.flatten_levels)
    walks_per_map: int = 64  # walks per map and symmetry
    align_weight: float = 1.0
    align_fraction: float = 0.25
    cond_dropout: dict[str, float] = field(default_factory=lambda: {"style_weights": 0.1, "sliders": 0.2,
                                                                    "memory": 0.1})
    freeze_base: bool = True  # train only the memory and the cross-attention
    threads: int = 0  # torch CPU threads; 0 = torch's default

    @classmethod
    def load(cls, path: str | Path) -> MemoryRunConfig:
        return cls(**json.loads(Path(path).read_text()))


def memory_adapter(init_from: str, recipe: dict[str, Any], memory_cfg: MemoryConfig, freeze_base: bool,
                   memory_emb: bool = False) -> MemoryDenoiser:
    """The shipped model ``init_from`` (its denoiser ``recipe``) with cross-attention to ``memory_cfg``'s memory
    tokens (and, ``memory_emb``, their mean into the embedding): every weight but the new ones is copied and their
    output projections start at zero (step 0 is exactly the shipped model); with ``freeze_base`` only the memory
    and the new layers learn."""
    unet = UNetConfig.from_dict({**recipe["unet"], "memory_dim": memory_cfg.dim, "memory_emb": memory_emb})
    model = MemoryDenoiser(Denoiser(UNet(unet), float(recipe["sigma_data"])), MemoryNetwork(memory_cfg))
    missing, unexpected = model.denoiser.load_state_dict(load_file(init_from), strict=False)
    if unexpected or any(not any(part in k for part in CROSS_ATTENTION) for k in missing):
        raise ValueError(f"{init_from} does not fit the memory model: missing {missing}, unexpected {unexpected}")
    with torch.no_grad():
        for name, p in model.denoiser.named_parameters():
            if ".proj_x." in name or "memory_emb." in name:
                p.zero_()  # step 0 is exactly the base model
            p.requires_grad_(not freeze_base or any(part in name for part in CROSS_ATTENTION))
    return model


def build(run: MemoryRunConfig, maps: MapSet) -> tuple[MemoryDenoiser, WalkDataset, dict[str, Any]]:
    """The model (initialised from the base), its dataset and the serving metadata."""
    found = read_metadata(run.init_from)
    recipe, base_meta = found["denoiser"], found["config"]
    if base_meta.get("kind") != "base" or RECIPE_KEY in recipe:
        raise ValueError(f"init_from {run.init_from!r} must be a base terrain model without memory")
    if abs(maps.cell_size * run.factor - base_meta["cell_size_m"]) > 1e-6:
        raise ValueError(f"corpus cells of {maps.cell_size} m x factor {run.factor} are not the base model's "
                         f"{base_meta['cell_size_m']} m cells")
    if list(maps.style_names) != base_meta["style_names"]:
        raise ValueError(f"corpus styles {maps.style_names} differ from the base model's {base_meta['style_names']}")
    memory_cfg = MemoryConfig(**{**run.memory, "tile_cells": base_meta["resolution"]})
    model = memory_adapter(run.init_from, recipe, memory_cfg, run.freeze_base)
    dataset = WalkDataset(maps, run.factor, memory_cfg.tile_cells, memory_cfg.region_tiles, run.max_context,
                          run.walks_per_map, seed=int(run.train.get("seed", 0)), level_std=run.level_std)
    meta = {k: v for k, v in base_meta.items() if k != "run"}
    meta.update(kind="base", memory=asdict(memory_cfg),
                init_from={"file": Path(run.init_from).name, "sha256": file_sha256(run.init_from)})
    return model, dataset, meta


def run_training(run: MemoryRunConfig, config_path: str = "", ship_now: bool = False) -> Path:
    """Train (or resume) to the configured steps and ship the EMA weights (ship_now: as the latest
    resume checkpoint has them, without training further)."""
    if run.threads:
        torch.set_num_threads(run.threads)
    maps = load_maps(run.corpus, "train")
    model, dataset, meta = build(run, maps)
    cfg = TrainConfig(**{"measure_sigma_data": False, **run.train})  # keep the base model's preconditioning
    loss = MemoryLoss(EDMLoss(cond_dropout=run.cond_dropout), run.align_weight, run.align_fraction)
    trainer = Trainer(model, dataset, loss, cfg)
    return train_and_ship(trainer, run, meta, config_path, len(maps), ship_now, max_context=run.max_context,
                          level_std=run.level_std, align_weight=run.align_weight, align_fraction=run.align_fraction,
                          freeze_base=run.freeze_base,
                          trained_parameters=sum(p.numel() for p in model.parameters() if p.requires_grad))


def main(argv: Sequence[str] | None = None) -> None:
    train_command(argv, "Train the memory-conditioned base model from a JSON config.", "configs/memory_base.json",
                  MemoryRunConfig.load, run_training)


if __name__ == "__main__":
    main()
