"""Train the learned erosion surrogate on the physics' own rollouts (``configs/erosion_surrogate.json``).

Data: corpus maps (already shaped by the corpus simulation) and maps the shipped diffusion models make
with the erosion stage off (raw, pitted), each run for ``rollout_steps`` steps of the mature stage's
process; from ``starts`` along each rollout, every horizon K on the ladder gives one example: the
surrogate's inputs and the change the implicit step missed, in units of the map's scale. Random
crops, dihedral flips and noise on the height channel (so chained calls see slightly imperfect maps).
The loss is the relative error of the whole change over each crop, the figure the report judges, plus
``gradient_loss`` times the same ratio for its gradients (which decide where the result drains).

Resumable: a checkpoint every ``save_every`` steps (``runs/``); a run stops at ``steps`` or after
``max_minutes`` of this invocation and continues where it stopped when started again.

    python -m backend.training.train_erosion_surrogate configs/erosion_surrogate.json --corpus DIR [DIR ...]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from backend.data.datasets import load_maps
from backend.models.erosion_surrogate import (GateConfig, SurrogateConfig, SurrogateNet, gate_feature,
                                              process_dict, save_surrogate)
from backend.simulation.landscape import erode
from backend.simulation.learned_steps import MATURE_STEP, surrogate_inputs
from backend.training.checkpoints import load_resume, optimizer_from_flat, optimizer_to_flat, save_resume

CELL_SIZE = 30.0  # the corpus's and the erosion stage's cells (the models' finest level)
GATE_TILE = 32


def generated_maps(count: int, seed0: int, size: int = 256) -> list[np.ndarray]:
    """Raw maps (erosion stage off) from the shipped diffusion models, styles in turn, seeds from seed0."""
    from backend.generators import DiffusionGenerator, GenerateRequest
    generator = DiffusionGenerator("cpu")
    maps = []
    for i in range(count):
        style = generator.styles[i % len(generator.styles)]
        request = GenerateRequest.from_params({"generator": "diffusion", "resolution": size, "seed": seed0 + i,
                                               "size_m": generator.native_size_m(size), "erosion_stage": "off",
                                               "style_weights": {style: 1.0}})
        maps.append(generator.generate(request, lambda *a: None).heights.astype(np.float64))
    return maps


def corpus_maps(dirs: list[str], split: str, count: int) -> list[np.ndarray]:
    """``count`` maps of the split spread evenly over it (every style appears)."""
    maps = load_maps(dirs, split)
    pick = np.linspace(0, len(maps) - 1, min(count, len(maps))).round().astype(int)
    return [maps.heights[i].astype(np.float64) for i in pick]


def rollout(z0: np.ndarray, steps: int) -> list[np.ndarray]:
    """The map after 0..steps physics steps of the mature process (one run: sinks resolved in step 1)."""
    states = [z0]
    erode(z0, CELL_SIZE, replace(MATURE_STEP, steps=steps), lambda i, n, z: states.append(z.copy()))
    return states


def examples(maps: list[np.ndarray], cfg: dict[str, Any]) -> dict[str, np.ndarray]:
    """Every (map, start, horizon) example: inputs [N, 4, S, S], missed change [N, S, S], K [N], full change."""
    inputs, missed, changed, horizons = [], [], [], []
    for z0 in maps:
        states = rollout(z0, cfg["rollout_steps"])
        for a in cfg["starts"]:
            for k in cfg["horizons"]:
                if a + k >= len(states):
                    continue
                x, implicit, scale = surrogate_inputs(states[a], CELL_SIZE, MATURE_STEP, k)
                change = states[a + k] - states[a]
                inputs.append(x.astype(np.float16))
                missed.append(((change - implicit) / scale).astype(np.float16))
                changed.append((change / scale).astype(np.float16))
                horizons.append(k)
    return {"inputs": np.stack(inputs), "missed": np.stack(missed), "changed": np.stack(changed),
            "horizon": np.array(horizons)}


def fit_gate(maps: list[np.ndarray], cfg: dict[str, Any]) -> GateConfig:
    """The gate's bias: the median of log10(tile mean |change per step| / scale over a period of 2) minus its
    feature (the first implicit step), and a safety margin at the 98th percentile of the underestimates (so
    few changing tiles are called settled). The slope is 1, not fitted: a fitted slope on rollouts of one
    kind of land (all rough, all smooth) is ill-determined and called flat land busy."""
    residuals = []
    for z0 in maps:
        states = rollout(z0, cfg["rollout_steps"])
        for a in cfg["starts"]:
            z, k = states[a], 2
            change = np.abs(states[a + k] - z) / max(np.std(z), 1e-6) / k
            n = z.shape[0] // GATE_TILE
            tiles = change.reshape(n, GATE_TILE, n, GATE_TILE).mean(axis=(1, 3))
            residuals.append((np.log10(tiles + 1e-9) - gate_feature(z, CELL_SIZE, MATURE_STEP, GATE_TILE)).ravel())
    residual = np.concatenate(residuals)
    bias = float(np.median(residual))
    return GateConfig(bias=bias, margin=float(np.percentile(residual - bias, 98)), tolerance=cfg["gate_tolerance"])


def batch(data: dict[str, np.ndarray], cfg: dict[str, Any], step: int) -> tuple[torch.Tensor, ...]:
    """Batch ``step``: random crops, dihedral flips and noise on heights, all keyed by the step number."""
    rng = np.random.default_rng([cfg["seed"], step])
    size, crop = data["inputs"].shape[-1], cfg["crop"]
    xs, ys, ts = [], [], []
    for i in rng.integers(0, len(data["horizon"]), cfg["batch"]):
        r, c = rng.integers(0, size - crop + 1, 2)
        window = (slice(None), slice(r, r + crop), slice(c, c + crop))
        x = data["inputs"][i][window].astype(np.float32)
        x[0] += rng.normal(0, rng.uniform(0, cfg["noise"]), x[0].shape)
        y = np.stack([data["missed"][i][window[1:]], data["changed"][i][window[1:]]]).astype(np.float32)
        turns, flip = rng.integers(0, 4), rng.integers(0, 2)
        x, y = (np.rot90(a, turns, axes=(1, 2)) for a in (x, y))
        if flip:
            x, y = x[:, :, ::-1], y[:, :, ::-1]
        xs.append(x.copy())
        ys.append(y.copy())
        ts.append(data["horizon"][i])
    return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys)), torch.tensor(ts)


def _over_change(per_crop: torch.Tensor, changed: torch.Tensor) -> torch.Tensor:
    """A per-crop error [B] over the crop's mean square change (floored), averaged over the batch."""
    return (per_crop / (changed**2).mean(dim=(1, 2)).clamp_min(1e-4)).mean()


def relative_error(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """||pred - missed||² / (||change||² + small) per crop, averaged: the report's figure on crops."""
    missed, changed = target[:, 0], target[:, 1]
    return _over_change(((predicted[:, 0] - missed) ** 2).mean(dim=(1, 2)), changed)


def gradient_error(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The same ratio for the gradients (cell differences) of the error and of the change: flow follows
    the steepest descent, so the valleys a result drains along are decided by its gradients."""
    def energy(f: torch.Tensor) -> torch.Tensor:
        return (torch.diff(f, dim=-1) ** 2).mean(dim=(1, 2)) + (torch.diff(f, dim=-2) ** 2).mean(dim=(1, 2))

    missed, changed = target[:, 0], target[:, 1]
    return (energy(predicted[:, 0] - missed) / energy(changed).clamp_min(1e-6)).mean()


def mean_error(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The squared mean of the error over the mean square of the change, per crop: a map's level after the jump
    (its hypsometry) follows the mean of the change, which the per-cell error weighs as one mode among many."""
    missed, changed = target[:, 0], target[:, 1]
    return _over_change((predicted[:, 0] - missed).mean(dim=(1, 2)) ** 2, changed)


def dataset(cfg: dict[str, Any], corpus: list[str], run_dir: Path, split: str) -> dict[str, np.ndarray]:
    """The examples of ``split`` ("train" or "heldout"), built once and cached in the run folder."""
    cached = run_dir / f"{split}.npz"
    if cached.exists():  # built for this ladder or a longer one: its examples of this ladder's horizons
        with np.load(cached) as z:
            keep = np.isin(z["horizon"], cfg["horizons"])
            return {k: z[k][keep] for k in z.files}
    count = cfg["maps"][split]
    seed0 = cfg["generated_seed"][split]
    maps = corpus_maps(corpus, split, count["corpus"]) + generated_maps(count["generated"], seed0)
    data = examples(maps, cfg)
    np.savez(cached, **data)
    return data


def evaluate(net: SurrogateNet, data: dict[str, np.ndarray]) -> float:
    """Mean relative error of the change over whole held-out maps."""
    errors = []
    with torch.no_grad():
        for i in range(len(data["horizon"])):
            x = torch.from_numpy(data["inputs"][i].astype(np.float32))[None]
            y = torch.from_numpy(np.stack([data["missed"][i], data["changed"][i]]).astype(np.float32))[None]
            errors.append(float(relative_error(net(x, torch.tensor([int(data["horizon"][i])])), y)))
    return float(np.mean(errors))


def learning_rate(cfg: dict[str, Any], step: int) -> float:
    """Warm-up over 100 steps, then cosine from lr to lr / 20 over the planned steps."""
    warm = min(1.0, (step + 1) / 100)
    progress = min(1.0, step / cfg["steps"])
    return cfg["lr"] * warm * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def train(cfg: dict[str, Any], corpus: list[str]) -> None:
    run_dir = Path(cfg["run_dir"])
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg["seed"])
    train_data, heldout = dataset(cfg, corpus, run_dir, "train"), dataset(cfg, corpus, run_dir, "heldout")
    config = SurrogateConfig(unet=cfg["unet"], fold=cfg["fold"], horizons=tuple(cfg["horizons"]),
                             fallback_share=cfg["fallback_share"], process=process_dict(MATURE_STEP),
                             routing=asdict(MATURE_STEP.routing))
    net = SurrogateNet(config)
    opt = torch.optim.Adam(net.parameters(), lr=cfg["lr"])
    step = 0
    resumed = load_resume(run_dir)
    if resumed is not None:
        tensors, state = resumed
        net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
        optimizer_from_flat(opt, tensors, state["optimizer"])
        step = state["step"]
    log_path = Path(cfg["log"])
    started = time.monotonic()
    while step < cfg["steps"] and time.monotonic() - started < 60 * cfg["max_minutes"]:
        for group in opt.param_groups:
            group["lr"] = learning_rate(cfg, step)
        x, y, k = batch(train_data, cfg, step)
        predicted = net(x, k)
        relative = relative_error(predicted, y)
        loss = (relative + cfg["gradient_loss"] * gradient_error(predicted, y)
                + cfg["mean_loss"] * mean_error(predicted, y))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        step += 1
        if step % cfg["save_every"] == 0 or step == cfg["steps"]:
            checkpoint(net, opt, step, run_dir)
            log(log_path, step, float(relative.detach()), evaluate(net.eval(), heldout), time.monotonic() - started)
            net.train()
    checkpoint(net, opt, step, run_dir)
    gate = fit_gate(corpus_maps(corpus, "train", cfg["gate_maps"]), cfg)
    card = {"steps": step, "config": cfg, "heldout_relative_error": evaluate(net.eval(), heldout)}
    shipped = tuple(cfg["ship_horizons"]) if "ship_horizons" in cfg else None  # benchmarks/bench_surrogate.py
    save_surrogate(cfg["out"], net, replace(config, gate=gate, shipped=shipped), card)


def checkpoint(net: SurrogateNet, opt: torch.optim.Optimizer, step: int, run_dir: Path) -> None:
    tensors, opt_state = optimizer_to_flat(opt)
    tensors.update({"net." + k: v.detach().contiguous() for k, v in net.state_dict().items()})
    save_resume(run_dir, step, tensors, {"optimizer": opt_state})


def log(path: Path, step: int, loss: float, heldout: float, seconds: float) -> None:
    """One CSV row per checkpoint: the training loss on the last batch and the held-out relative error."""
    new = not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", newline="") as f:
        writer = csv.writer(f)
        if new:
            writer.writerow(["step", "train_relative_error", "heldout_relative_error", "seconds_this_run"])
        writer.writerow([step, f"{loss:.5f}", f"{heldout:.5f}", f"{seconds:.0f}"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--corpus", nargs="+", required=True, help="corpus folders (backend.data.corpus)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    train(json.loads(Path(args.config).read_text()), args.corpus)


if __name__ == "__main__":
    main()
