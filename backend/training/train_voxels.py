"""Train the voxel chunk model: ``python -m backend.training.train_voxels configs/voxel_chunks.json``.

A 3D U-Net (the shared backbone at dims=3) learns, with the EDM loss, the three feature channels of
``backend.voxels.channels`` on 40³ windows of the voxel corpus (``backend.data.voxel_corpus``), folded 2³
into channels, conditioned on the terrain's truncated density, a random set of known cells (neighbour
slabs, locked boxes), the style and the two feature sliders. The run resumes from ``out_dir``; a fresh run
may start from a shipped file's weights (``init_from``: continuing a run whose checkpoints are gone); the EMA
weights go to ``ship_to`` with what serving needs in the metadata. ``feature_weight`` and ``p_mean`` change the
loss for the caves' sake (see ``FeatureWeight``); their defaults are the plain EDM loss.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from backend.data.voxel_corpus import MARGIN, SPATIAL_CHANNELS, WINDOW, VoxelWindowDataset, load_regions
from backend.diffusion.loss import EDMLoss
from backend.diffusion.preconditioning import Denoiser
from backend.models.inference import read_metadata
from backend.networks.unet import UNet, UNetConfig
from backend.training.loop import TrainConfig, Trainer, estimate_sigma_data
from backend.training.train_terrain import start_from_weights, train_and_ship, train_command
from backend.voxels import channels as ch
from backend.voxels.features import SLIDER_NAMES, STYLE_FEATURES

SIGMA_ITEMS = 256


@dataclass(frozen=True)
class FeatureWeight:
    """The loss weight per cell of a folded batch: 1 + weight on cells within ``reach`` cells of a feature (a change
    of truncated density beyond the decode's dead zone), 1 elsewhere. Caves are about 1.5 % of the cells, so under a
    plain mean a haze of half-committed change around them cost the network little."""

    weight: float
    reach: int

    def __call__(self, x0: Tensor) -> Tensor:
        feature = (ch.unfold(x0)[:, :1].abs() > ch.CHANGE_DEAD_ZONE).float()  # [B, 1, *cells]
        near = F.max_pool3d(feature, 2 * self.reach + 1, stride=1, padding=self.reach)
        return ch.fold((1 + self.weight * near).expand(-1, ch.N_CHANNELS, -1, -1, -1))


@dataclass
class VoxelRunConfig:
    corpus: str  # a voxel corpus folder (backend.data.voxel_corpus)
    unet: dict[str, Any]  # UNetConfig fields (dims, channels, styles and sliders are filled in)
    train: dict[str, Any]  # TrainConfig fields
    ship_to: str
    cond_dropout: dict[str, float] = field(default_factory=lambda: {"style_weights": 0.1, "sliders": 0.2})
    threads: int = 0  # torch CPU threads; 0 = torch's default
    init_from: dict[str, str] = field(default_factory=dict)  # {"file", "sha256", "revision"}: a fresh run's start
    feature_weight: float = 0.0  # extra loss weight near features (FeatureWeight); 0 = the plain EDM loss
    feature_reach: int = 2  # cells around a feature that share its weight
    p_mean: float = EDMLoss.P_mean  # mean log training sigma: higher spends more training where structure is decided

    @classmethod
    def load(cls, path: str | Path) -> VoxelRunConfig:
        return cls(**json.loads(Path(path).read_text()))


def build(run: VoxelRunConfig) -> tuple[Denoiser, VoxelWindowDataset, dict[str, Any]]:
    """The denoiser, its dataset and the serving metadata."""
    regions = load_regions(run.corpus)
    folded = ch.FOLD**3
    unet = UNetConfig.from_dict({**run.unet, "dims": 3, "in_channels": ch.N_CHANNELS * folded,
                                 "out_channels": ch.N_CHANNELS * folded, "cond_channels": SPATIAL_CHANNELS * folded,
                                 "n_styles": len(regions.style_names), "n_sliders": len(SLIDER_NAMES)})
    meta = {"kind": "voxel_chunks", "style_names": list(regions.style_names), "slider_names": list(SLIDER_NAMES),
            "voxel_size_m": regions.voxel_size, "margin": MARGIN, "window": WINDOW, "fold": ch.FOLD,
            "tsdf_cells": ch.TSDF_CELLS, "covers": {s: STYLE_FEATURES[s].cover for s in regions.style_names},
            "corpus_regions": len(regions)}
    dataset = VoxelWindowDataset(regions)
    # Measured here on SIGMA_ITEMS windows: the loop's default (4096 windows) would hold gigabytes at once.
    sigma_data = estimate_sigma_data(dataset, max_items=SIGMA_ITEMS)
    return Denoiser(UNet(unet), sigma_data=sigma_data), dataset, meta


def run_training(run: VoxelRunConfig, config_path: str = "", ship_now: bool = False) -> Path:
    """Train (or resume) to the configured steps and ship the EMA weights."""
    if run.threads:
        torch.set_num_threads(run.threads)
    torch.manual_seed(int(run.train.get("seed", 0)))  # the weights' initialisation: the same run, the same model
    denoiser, dataset, meta = build(run)
    cfg = TrainConfig(**{**run.train, "measure_sigma_data": False})  # build measured it
    if run.init_from:
        start_from_weights(denoiser, run.init_from, cfg.out_dir)
        # The weights were learned under their file's preconditioning, so keep its sigma_data.
        denoiser.sigma_data = float(read_metadata(run.init_from["file"])["denoiser"]["sigma_data"])
        meta["fine_tuned_from"] = run.init_from
    cell_weight = FeatureWeight(run.feature_weight, run.feature_reach) if run.feature_weight else None
    trainer = Trainer(denoiser, dataset, EDMLoss(P_mean=run.p_mean, cond_dropout=run.cond_dropout,
                                                 cell_weight=cell_weight), cfg)
    facts_run = replace(run, corpus=[run.corpus])  # the run's facts list corpus folders
    return train_and_ship(trainer, facts_run, meta, config_path, meta["corpus_regions"], ship_now)


def main(argv: Sequence[str] | None = None) -> None:
    train_command(argv, "Train the voxel chunk model from a JSON config.", "configs/voxel_chunks.json",
                  VoxelRunConfig.load, run_training)


if __name__ == "__main__":
    main()
