"""Train a model from a JSON config: ``python -m backend.training.train_terrain configs/X.json``.

Three kinds of model share this script, each a view of the same corpus maps:

* ``base``: style-conditioned 64² maps (the corpus maps area-averaged by ``factor``);
* ``superres``: the residual between a map and the bicubic upsampling of its coarse version,
  conditioned on that upsampling and the style (both ``backend.data.datasets``);
* ``profile``: 1D elevation profiles along rivers, ridges and cliffs, conditioned on the kind of
  line, its drop and its length (``backend.data.elevation_profiles``; the curve guides' model).

The run resumes from ``out_dir`` if interrupted. At the end the EMA weights are written to
``ship_to`` (safetensors) with everything serving needs in its metadata (terrain: style and slider
names, factor, residual scale, per-style sea-level defaults; profile: line kinds, profile length,
per-kind deviation scales, extraction settings) and the facts of the run for the model card
(corpus, steps, wall time, hardware, final loss).
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from backend.data import elevation_profiles as profiles
from backend.data.datasets import BaseDataset, MapSet, SuperResDataset, load_maps
from backend.diffusion.loss import EDMLoss
from backend.diffusion.preconditioning import Denoiser
from backend.models.inference import file_sha256, load_inference, save_inference
from backend.networks.unet import UNet, UNetConfig, count_params
from backend.training.loop import TrainConfig, Trainer

KINDS = ("base", "superres", "profile")
Dataset = BaseDataset | SuperResDataset | profiles.ProfileDataset


@dataclass
class TerrainRunConfig:
    kind: str  # "base", "superres" or "profile"
    corpus: list[str]  # corpus folders (their "train" split is used)
    unet: dict[str, Any]  # UNetConfig fields (n_styles, n_sliders, cond_channels are filled in)
    train: dict[str, Any]  # TrainConfig fields
    ship_to: str  # where the EMA inference weights go, e.g. models/terrain_base.safetensors
    factor: int = 4  # coarse = fine area-averaged by factor
    crop: int = 64  # superres training crop (cells)
    profile: dict[str, Any] = field(default_factory=dict)  # ProfileSettings fields (kind "profile")
    cond_dropout: dict[str, float] = field(default_factory=lambda: {"style_weights": 0.1, "sliders": 0.2})
    threads: int = 0  # torch CPU threads; 0 = torch's default
    init_from: dict[str, str] = field(default_factory=dict)  # {"file", "sha256", "revision"}: a fresh run's start

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")

    @classmethod
    def load(cls, path: str | Path) -> TerrainRunConfig:
        return cls(**json.loads(Path(path).read_text()))


def slider_means(maps: MapSet) -> dict[str, list[float]]:
    """Mean slider values per style, in [0, 1]: what an unsent slider means for that style.

    The sea-level mean (fraction of the area under water) is also the style's default sea level.
    """
    return {name: [float(v) for v in maps.sliders[maps.style == s].mean(axis=0)] if (maps.style == s).any()
            else [0.5] * len(maps.slider_names) for s, name in enumerate(maps.style_names)}


def build_profile(run: TerrainRunConfig, maps: MapSet) -> tuple[Denoiser, profiles.ProfileDataset, dict[str, Any]]:
    """The 1D profile denoiser: kinds of line as its "styles", drop and length as its sliders."""
    settings = profiles.ProfileSettings(**run.profile)
    out_dir = run.train.get("out_dir")
    cache = Path(out_dir) / "profiles-train.npz" if out_dir else None  # a resumed run skips the extraction
    dataset = profiles.ProfileDataset(profiles.load_profiles(run.corpus, "train", settings, cache, maps))
    unet = UNetConfig.from_dict({**run.unet, "dims": 1, "n_styles": len(profiles.KINDS),
                                 "n_sliders": len(profiles.SLIDER_NAMES), "cond_channels": 0})
    found = dataset.profiles
    meta = {"kind": run.kind, "profile_kinds": list(profiles.KINDS), "slider_names": list(profiles.SLIDER_NAMES),
            "length": settings.length, "deviation_scale": dataset.scales, "extraction": asdict(settings),
            "profiles_per_kind": {k: len(found.of_kind(k)) for k in profiles.KINDS},
            "corpus_cell_size_m": maps.cell_size}
    return Denoiser(UNet(unet)), dataset, meta


def build(run: TerrainRunConfig, maps: MapSet) -> tuple[Denoiser, Dataset, dict[str, Any]]:
    """The denoiser to train, its dataset and the serving metadata that depends on the data."""
    if run.kind == "profile":
        return build_profile(run, maps)
    n_styles, n_sliders = len(maps.style_names), len(maps.slider_names)
    means = slider_means(maps)
    sea = maps.slider_names.index("sea_level")
    meta: dict[str, Any] = {"kind": run.kind, "factor": run.factor, "style_names": list(maps.style_names),
                            "slider_names": list(maps.slider_names), "slider_means": means,
                            "sea_fraction": {s: v[sea] for s, v in means.items()},
                            "corpus_cell_size_m": maps.cell_size}
    if run.kind == "base":
        dataset: BaseDataset | SuperResDataset = BaseDataset(maps, run.factor)
        unet = UNetConfig.from_dict({**run.unet, "n_styles": n_styles, "n_sliders": n_sliders, "cond_channels": 0})
        meta.update(resolution=int(dataset.coarse.shape[-1]), cell_size_m=maps.cell_size * run.factor)
    else:
        dataset = SuperResDataset(maps, run.factor, run.crop)
        unet = UNetConfig.from_dict({**run.unet, "n_styles": n_styles, "n_sliders": n_sliders, "cond_channels": 1})
        meta.update(residual_scale=dataset.residual_scale, cell_size_m=maps.cell_size)
    return Denoiser(UNet(unet)), dataset, meta


def log_summary(metrics_csv: Path | None, steps: int) -> dict[str, float]:
    """Training seconds over all resumed sessions and the mean loss of the last 200 logged steps."""
    if metrics_csv is None or not metrics_csv.exists():
        return {}
    with open(metrics_csv) as f:
        rows = [r for r in csv.DictReader(f) if int(r["step"]) <= steps]
    if len(rows) < 2:
        return {}
    every = int(rows[1]["step"]) - int(rows[0]["step"])
    tail = [float(r["loss"]) for r in rows if int(r["step"]) > steps - 200]
    return {"train_seconds_total": round(sum(float(r["sec_per_step"]) for r in rows) * every, 1),
            "final_loss_mean_last_200_steps": float(np.mean(tail)) if tail else float("nan")}


def run_facts(cfg: TrainConfig, trainer: Trainer, config_path: str, corpus: list[str], train_maps: int,
              train_items: int, start_step: int, elapsed: float) -> dict[str, Any]:
    """The facts of a training run for the model card: data, steps, wall time, loss, size, hardware."""
    return {
        "config_file": config_path, "corpus": corpus, "train_maps": train_maps,
        "train_items": train_items, "batch_size": cfg.batch_size,
        "steps_done": trainer.step, "resumed_from_step": start_step, "wall_seconds_this_process": round(elapsed, 1),
        **log_summary(Path(cfg.out_dir) / "metrics.csv" if cfg.out_dir else None, trainer.step),
        "parameters": count_params(trainer.denoiser),
        "hardware": f"{platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}, "
                    f"{'cuda ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu'}",
        "torch": torch.__version__, "train_config": asdict(cfg),
    }


def start_from_weights(denoiser: Denoiser, init_from: dict[str, str], out_dir: str | None) -> None:
    """Fine-tuning: a fresh run starts from an inference file's weights, checked by hash (the file is often
    the one the run ships to, so a resumed run, whose checkpoint holds its own weights, skips it)."""
    if out_dir and (Path(out_dir) / "resume.json").exists():
        return
    found = file_sha256(init_from["file"])
    if found != init_from["sha256"]:
        raise ValueError(f"{init_from['file']} has sha256 {found}, not the {init_from['sha256']} the config names")
    denoiser.load_state_dict(load_inference(init_from["file"]).state_dict(), strict=True)


def run_training(run: TerrainRunConfig, config_path: str = "", ship_now: bool = False) -> Path:
    """Train (or resume) to the configured steps and ship the EMA weights.

    ship_now: ship the latest resume checkpoint's EMA as it is, without training further.
    """
    if run.threads:
        torch.set_num_threads(run.threads)
    maps = load_maps(run.corpus, "train")
    torch.manual_seed(int(run.train.get("seed", 0)))  # the weights' initialisation: the same run, the same model
    denoiser, dataset, meta = build(run, maps)
    cfg = TrainConfig(**run.train)
    if run.init_from:
        start_from_weights(denoiser, run.init_from, cfg.out_dir)
        meta["fine_tuned_from"] = run.init_from
    trainer = Trainer(denoiser, dataset, EDMLoss(cond_dropout=run.cond_dropout), cfg)
    return train_and_ship(trainer, run, meta, config_path, len(maps), ship_now)


def train_and_ship(trainer: Trainer, run: Any, meta: dict[str, Any], config_path: str, train_maps: int,
                   ship_now: bool, **facts: Any) -> Path:
    """Train to the configured steps (or, ship_now, not at all), add the run's facts (and `facts`) to the
    serving metadata and write the EMA weights to ``run.ship_to``."""
    start_step, t0 = trainer.step, time.perf_counter()
    if ship_now:
        trainer.cfg.steps = trainer.step
    else:
        trainer.train()
    meta["run"] = {**run_facts(trainer.cfg, trainer, config_path, run.corpus, train_maps, len(trainer.dataset),
                               start_step, time.perf_counter() - t0), **facts}
    out = Path(run.ship_to)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_inference(out, trainer.ema, meta)
    return out


def train_command(argv: Sequence[str] | None, description: str, config_help: str, load: Callable[[str], Any],
                  train: Callable[[Any, str, bool], Path]) -> None:
    """A training command: a JSON config, the overrides every run takes, then `train(run, path, ship_now)`."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("config", help=config_help)
    ap.add_argument("--steps", type=int, help="override the config's step count (smoke runs)")
    ap.add_argument("--out-dir", help="override the config's run folder")
    ap.add_argument("--ship-to", help="override where the EMA weights are written")
    ap.add_argument("--ship-now", action="store_true",
                    help="ship the latest checkpoint's EMA weights without training further")
    args = ap.parse_args(argv)
    run = load(args.config)
    if args.steps is not None:
        run.train["steps"] = args.steps
    if args.out_dir:
        run.train["out_dir"] = args.out_dir
    if args.ship_to:
        run.ship_to = args.ship_to
    print(f"wrote {train(run, args.config, args.ship_now)}")


def main(argv: Sequence[str] | None = None) -> None:
    train_command(argv, "Train a terrain base, super-resolution or profile model from a JSON config.",
                  "configs/terrain_base.json, configs/terrain_superres.json or configs/profile_1d.json",
                  TerrainRunConfig.load, run_training)


if __name__ == "__main__":
    main()
