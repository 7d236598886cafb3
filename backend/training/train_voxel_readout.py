"""Train the voxel memory's slider readout: ``python -m backend.training.train_voxel_readout configs/voxel_readout.json``.

A second stage after ``train_voxel_memory``: the memory model (``memory_model``) stays frozen, and a small
``backend.memory.readout.SliderReadout`` learns to regress a corpus region's feature sliders (the values the
corpus drew when it simulated the region: ``VoxelRegions.sliders``) from the tokens a chunk of that region reads
after other chunks of it were committed. Reads come from the memory's own training walks
(``backend.data.voxel_walks``: 0 to 17 other chunks of the region written in random order, the whole region
turned by a random symmetry) with every context chunk noise-augmented at the serving write noise
(``write_sigma``), as ``VoxelMemory.commit`` writes them. They are computed once; the readout then trains on
them for ``steps`` steps (mean squared error). The memory model's held-out regions are held out here too and
measured: the readout's error on their reads against the constant that best fits the training labels. Only the
sliders it reads at least ``min_gain`` better than that constant are served (``ReadoutConfig.served``).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from backend.data.voxel_corpus import REGION_CHUNKS, load_regions
from backend.data.voxel_walks import VoxelWalkDataset
from backend.memory.loss import walk_memory
from backend.memory.network import MemoryNetwork
from backend.memory.readout import ReadoutConfig, SliderReadout
from backend.models.inference import file_sha256
from backend.models.voxel import VoxelModel, save_readout

MAX_CONTEXT = int(np.prod(REGION_CHUNKS)) - 1  # every other chunk of a corpus region


@dataclass
class ReadoutRunConfig:
    corpus: str  # the voxel corpus the memory model was trained on
    memory_model: str  # models/voxel_memory.safetensors
    ship_to: str  # models/voxel_readout.safetensors
    readout: dict[str, Any] = field(default_factory=dict)  # ReadoutConfig fields (dim, slider_names filled in)
    reads_per_region: int = 32  # training reads per region (at most the walks' 64 windows a region)
    held_reads_per_region: int = 16
    steps: int = 3000
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-2
    seed: int = 0
    threads: int = 1
    min_gain: float = 0.1  # a slider is served when its held-out RMSE is at least this share below a constant's

    @classmethod
    def load(cls, path: str | Path) -> ReadoutRunConfig:
        return cls(**json.loads(Path(path).read_text()))


def memory_reads(network: MemoryNetwork, regions: Any, indices: np.ndarray, per_region: int, seed: int,
                 batch: int = 16) -> tuple[Tensor, Tensor]:
    """(reads [N, T, D], the reads' regions' sliders [N, S]): ``per_region`` walks of each region in ``indices``."""
    cfg = network.config
    data = VoxelWalkDataset(regions, indices, cfg.region_tiles, MAX_CONTEXT, fold_probability=0.0, seed=seed)
    if per_region > data.windows_per_region:
        raise ValueError(f"at most {data.windows_per_region} reads a region, got {per_region}")
    order = [h * data.windows_per_region + w for h in range(len(indices)) for w in range(per_region)]
    generator = torch.Generator().manual_seed(seed)
    reads = []
    for start in range(0, len(order), batch):
        extras = [data[i][2] for i in order[start:start + batch]]
        ex = {k: torch.stack([e[k] for e in extras]) for k in extras[0]}
        context, valid = ex["context"], ex["ctx_valid"].bool()
        noised = context[valid] + cfg.write_sigma * torch.randn(context[valid].shape, generator=generator)
        with torch.no_grad():
            written = network.encode(noised, torch.full((len(noised),), cfg.write_sigma))
            tokens = torch.zeros(*valid.shape, *written.shape[1:])
            tokens[valid] = written
            reads.append(walk_memory(network, tokens, ex))
    labels = torch.from_numpy(regions.sliders[np.repeat(indices, per_region)]).float()
    return torch.cat(reads), labels


def fit(readout: SliderReadout, reads: Tensor, labels: Tensor, run: ReadoutRunConfig) -> list[float]:
    """Train on (reads, labels) by mean squared error; the loss every 100 steps."""
    generator = torch.Generator().manual_seed(run.seed)
    optimiser = torch.optim.AdamW(readout.parameters(), lr=run.lr, weight_decay=run.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, run.steps)
    log = []
    for step in range(run.steps):
        pick = torch.randint(len(reads), (run.batch_size,), generator=generator)
        loss = ((readout(reads[pick]) - labels[pick]) ** 2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        if step % 100 == 0 or step == run.steps - 1:
            log.append(loss.item())
    return log


def errors(estimate: Tensor, labels: Tensor, constant: Tensor, names: Sequence[str]) -> dict[str, dict[str, float]]:
    """Per slider: RMSE of the estimate and of the constant, and the estimate's correlation with the labels."""
    out = {}
    for j, name in enumerate(names):
        e, y = estimate[:, j].numpy(), labels[:, j].numpy()
        out[name] = {"rmse": float(np.sqrt(np.mean((e - y) ** 2))),
                     "constant_rmse": float(np.sqrt(np.mean((float(constant[j]) - y) ** 2))),
                     "correlation": float(np.corrcoef(e, y)[0, 1])}
    return out


def served_sliders(held_errors: dict[str, dict[str, float]], min_gain: float) -> tuple[str, ...]:
    """The sliders whose held-out RMSE is at least ``min_gain`` of a constant's below it: what serving estimates."""
    return tuple(name for name, e in held_errors.items() if e["rmse"] <= (1.0 - min_gain) * e["constant_rmse"])


def run_training(run: ReadoutRunConfig) -> Path:
    if run.threads:
        torch.set_num_threads(run.threads)
    torch.manual_seed(run.seed)
    t0 = time.perf_counter()
    model = VoxelModel.load(run.memory_model)
    network = model.denoiser.network
    regions = load_regions(run.corpus)
    if len(regions) != model.meta["memory_corpus_regions"] or list(regions.style_names) != model.meta["style_names"]:
        raise ValueError(f"{run.corpus} is not the corpus the memory model was trained on")
    held = np.array(model.meta["held_out_regions"])
    train = np.setdiff1d(np.arange(len(regions)), held)
    reads, labels = memory_reads(network, regions, train, run.reads_per_region, run.seed)
    held_reads, held_labels = memory_reads(network, regions, held, run.held_reads_per_region, run.seed + 1)
    t_reads = time.perf_counter() - t0
    cfg = ReadoutConfig(**{**run.readout, "dim": network.config.dim, "slider_names": tuple(model.meta["slider_names"])})
    readout = SliderReadout(cfg)
    log = fit(readout, reads, labels, run)
    readout.eval()
    with torch.no_grad():
        held_estimate, train_estimate = readout(held_reads), readout(reads)
    constant = labels.mean(0)
    held_errors = errors(held_estimate, held_labels, constant, cfg.slider_names)
    readout.config = replace(cfg, served=served_sliders(held_errors, run.min_gain))
    meta = {"memory_model": {"file": Path(run.memory_model).name, "sha256": file_sha256(run.memory_model)},
            "held_out_regions": held.tolist(), "train_regions": len(train), "train_reads": len(reads),
            "held_reads": len(held_reads), "constant": constant.tolist(),
            "held_out": held_errors, "served": list(readout.config.served),
            "train": errors(train_estimate, labels, constant, cfg.slider_names),
            "loss_log": log, "run": {**asdict(run), "reads_seconds": t_reads,
                                     "seconds": time.perf_counter() - t0,
                                     "parameters": sum(p.numel() for p in readout.parameters())}}
    out = Path(run.ship_to)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_readout(out, readout, meta)
    print(json.dumps({k: meta[k] for k in ("held_out", "train", "run")}, indent=1))
    return out


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config", help="configs/voxel_readout.json")
    ap.add_argument("--steps", type=int, help="override the config's step count (smoke runs)")
    ap.add_argument("--ship-to", help="override where the readout is written")
    args = ap.parse_args(argv)
    run = ReadoutRunConfig.load(args.config)
    run.steps = args.steps if args.steps is not None else run.steps
    run.ship_to = args.ship_to or run.ship_to
    print(f"wrote {run_training(run)}")


if __name__ == "__main__":
    main()
