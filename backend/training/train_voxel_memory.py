"""Train voxel world memory: ``python -m backend.training.train_voxel_memory configs/voxel_memory.json``.

The 2D worlds' recipe (``train_memory``) on voxel chunks: the shipped voxel model (``init_from``) gets
cross-attention to memory tokens in its attention block and, as that block sits at 5³ cells in the middle of
the network, the tokens' mean into the embedding every residual block reads (``memory_emb``, as sliders enter);
it stays frozen but for those new layers, whose output projections start at zero (step 0 is exactly the
shipped model), and learns them together with a MemoryNetwork at dims=3 (``backend.memory``: chunk encoder over
the model's folded channels, the same gated writer and banks) on walks over the voxel corpus
(``backend.data.voxel_walks``) with ``MemoryLoss``: the context chunks, each noise-augmented at its own level
(GameNGen's context noise), are written into fresh memory and the window is denoised reading it; memory dropout
trains the null memory, so the same weights run without memory. Sliders are dropped half the time (the shipped
model's training dropped them a fifth): where the artist leaves them unset, the memory is what tells the model
about the region, and with them given the memory has little left to add.

Without the 2D recipe's alignment term (``align_weight`` 0): it writes memory from the denoiser's own estimates
of the context, but a voxel chunk's estimate needs that chunk's own terrain window and known cells, one more
forward pass per context chunk, which one CPU thread cannot afford; the context noise augmentation stays.
The last ``held_out_per_style`` regions of every style are left out of training for the report
(``reports/make_voxel_memory_report.py``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import torch

from backend.data.voxel_corpus import load_regions
from backend.data.voxel_walks import VoxelWalkDataset, held_out
from backend.diffusion.loss import EDMLoss
from backend.memory.loss import MemoryLoss
from backend.memory.network import RECIPE_KEY, MemoryConfig, MemoryDenoiser
from backend.models.inference import file_sha256, read_metadata
from backend.training.loop import TrainConfig, Trainer
from backend.training.train_memory import memory_adapter
from backend.training.train_terrain import train_and_ship, train_command
from backend.voxels import channels as ch
from backend.voxels.chunk import CHUNK


@dataclass
class VoxelMemoryRunConfig:
    corpus: str  # a voxel corpus folder (backend.data.voxel_corpus)
    init_from: str  # the shipped voxel model, models/voxel_chunks.safetensors
    train: dict[str, Any]  # TrainConfig fields
    ship_to: str  # e.g. reports/voxel_memory/voxel_memory.safetensors
    memory: dict[str, Any] = field(default_factory=dict)  # MemoryConfig fields (dims, channels, tile_cells filled in)
    held_out_per_style: int = 2  # regions a style kept out of training (the report's)
    max_context: int = 6  # chunks written before a window
    cond_dropout: dict[str, float] = field(default_factory=lambda: {"style_weights": 0.1, "sliders": 0.2,
                                                                    "memory": 0.1})
    freeze_base: bool = True
    memory_emb: bool = True  # the memory's mean also into the embedding (the voxel model attends only at 5³)
    threads: int = 1  # torch CPU threads; 0 = torch's default

    @classmethod
    def load(cls, path: str | Path) -> VoxelMemoryRunConfig:
        return cls(**json.loads(Path(path).read_text()))


def voxel_memory_config(memory: dict[str, Any]) -> MemoryConfig:
    """A MemoryConfig whose tiles are voxel chunks as the voxel model's folded channels."""
    return MemoryConfig(**{**memory, "dims": 3, "channels": ch.N_CHANNELS * ch.FOLD**3, "tile_cells": CHUNK // ch.FOLD})


def build(run: VoxelMemoryRunConfig) -> tuple[MemoryDenoiser, VoxelWalkDataset, dict[str, Any]]:
    """The model (the shipped voxel model with memory), its dataset and the serving metadata."""
    found = read_metadata(run.init_from)
    recipe, base_meta = found["denoiser"], found["config"]
    if base_meta.get("kind") != "voxel_chunks" or RECIPE_KEY in recipe:
        raise ValueError(f"init_from {run.init_from!r} must be a voxel chunk model without memory")
    regions = load_regions(run.corpus)
    if list(regions.style_names) != base_meta["style_names"]:
        raise ValueError(f"corpus styles {regions.style_names} differ from the model's {base_meta['style_names']}")
    memory_cfg = voxel_memory_config(run.memory)
    model = memory_adapter(run.init_from, recipe, memory_cfg, run.freeze_base, run.memory_emb)
    train, held = held_out(regions, run.held_out_per_style)
    dataset = VoxelWalkDataset(regions, train, memory_cfg.region_tiles, run.max_context,
                               seed=int(run.train.get("seed", 0)))
    meta = {k: v for k, v in base_meta.items() if k != "run"}
    meta.update(memory=asdict(memory_cfg), memory_corpus_regions=len(regions), held_out_regions=held.tolist(),
                init_from={"file": Path(run.init_from).name, "sha256": file_sha256(run.init_from)})
    return model, dataset, meta


def run_training(run: VoxelMemoryRunConfig, config_path: str = "", ship_now: bool = False) -> Path:
    """Train (or resume) to the configured steps and ship the EMA weights."""
    if run.threads:
        torch.set_num_threads(run.threads)
    torch.manual_seed(int(run.train.get("seed", 0)))  # the memory network's initialisation
    model, dataset, meta = build(run)
    cfg = TrainConfig(**{**run.train, "measure_sigma_data": False})  # keep the shipped model's preconditioning
    loss = MemoryLoss(EDMLoss(cond_dropout=run.cond_dropout), align_weight=0.0)
    trainer = Trainer(model, dataset, loss, cfg)
    return train_and_ship(trainer, replace(run, corpus=[run.corpus]), meta, config_path, len(dataset.indices),
                          ship_now, max_context=run.max_context, freeze_base=run.freeze_base,
                          trained_parameters=sum(p.numel() for p in model.parameters() if p.requires_grad))


def main(argv: Sequence[str] | None = None) -> None:
    train_command(argv, "Train voxel world memory on the shipped voxel model from a JSON config.",
                  "configs/voxel_memory.json", VoxelMemoryRunConfig.load, run_training)


if __name__ == "__main__":
    main()
