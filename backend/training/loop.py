"""A training loop that knows nothing of the model: a denoiser, a dataset, a loss callable.

It owns reduction, AdamW, gradient clipping, EMA, bf16 autocast (CUDA only), torch.compile,
DDP (under torchrun, WORLD_SIZE > 1), resumable checkpoints, a tqdm bar and a CSV metrics log.
Every step's batch indices and noise come from generators seeded by (seed, step, rank), so an
interrupted run resumed from a checkpoint follows the uninterrupted run exactly.
"""

from __future__ import annotations

import copy
import csv
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from backend.diffusion.preconditioning import Conditioning, Denoiser
from backend.models.inference import module_tensors, save_inference
from backend.training import checkpoints

# A dataset is a [N, C, *S] tensor, or a sequence of items x [C, *S], (x, Conditioning of unbatched tensors) or
# (x, Conditioning, extras): extras is a dict of unbatched tensors the loss needs besides x (e.g. a walk's context).
Item = Tensor | tuple[Tensor, Conditioning] | tuple[Tensor, Conditioning, dict[str, Tensor]]
Dataset = Tensor | Sequence[Item]
LossFn = Callable[..., Tensor]  # loss(denoiser, x0, cond, generator=g[, extras=batched extras]) -> [B]
Extras = dict[str, Tensor] | None


@dataclass
class TrainConfig:
    steps: int = 10_000  # total optimizer steps
    batch_size: int = 32  # global batch, split evenly across DDP ranks
    lr: float = 2e-4
    warmup_steps: int = 0  # linear LR warm-up
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 0.0
    grad_clip: float = 1.0  # max global grad norm; 0 = no clipping (norm still logged)
    ema_decay: float = 0.999  # capped by (1 + step) / (10 + step) early on so the EMA is not stuck at init
    seed: int = 0
    measure_sigma_data: bool = True  # set denoiser.sigma_data to the data's std before step 0
    log_every: int = 10  # steps per metrics.csv row
    ckpt_every: int = 1000  # steps per resume checkpoint (0 = only at the end); needs out_dir
    out_dir: str | None = None  # resume checkpoints, metrics.csv, final ema.safetensors
    compile: bool = False  # torch.compile the training forward
    bf16: bool = True  # bf16 autocast, applied on CUDA only
    progress: bool = True  # tqdm bar (rank 0)
    device: str = "auto"  # "auto" = cuda if available else cpu
    workers: int = 0  # processes that build the next batches while the model trains (same batches as 0)


def _collate(items: list[Item]) -> tuple[Tensor, Conditioning | None, Extras]:
    if isinstance(items[0], Tensor):
        return torch.stack(items), None, None  # type: ignore[arg-type]
    xs = torch.stack([it[0] for it in items])  # type: ignore[index]
    conds = [it[1].map(lambda t: t.unsqueeze(0)) for it in items]  # type: ignore[index]
    extras = None if len(items[0]) < 3 else {k: torch.stack([it[2][k] for it in items]) for k in items[0][2]}
    return xs, Conditioning.cat(conds), extras


def estimate_sigma_data(dataset: Dataset, max_items: int = 4096, seed: int = 0) -> float:
    """Std of all values of up to max_items random items: EDM's sigma_data, measured not guessed."""
    n = len(dataset)
    if n == 0:
        raise ValueError("dataset is empty")
    idx = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:max_items]
    x = _batch(dataset, idx)[0]
    return float(x.double().std())


def _batch(dataset: Dataset, idx: Tensor) -> tuple[Tensor, Conditioning | None, Extras]:
    if isinstance(dataset, Tensor):
        return dataset[idx], None, None
    return _collate([dataset[int(i)] for i in idx])


class Trainer:
    """Trains `denoiser` in place; `self.ema` is the EMA copy to save for inference."""

    def __init__(self, denoiser: Denoiser, dataset: Dataset, loss_fn: LossFn, cfg: TrainConfig):
        if len(dataset) == 0:
            raise ValueError("dataset is empty")
        self.cfg = cfg
        self.dataset = dataset
        self.loss_fn = loss_fn
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        if cfg.batch_size % self.world:
            raise ValueError(f"batch_size={cfg.batch_size} not divisible by WORLD_SIZE={self.world}")
        if cfg.device == "auto":
            local = int(os.environ.get("LOCAL_RANK", "0"))
            self.device = torch.device(f"cuda:{local}" if torch.cuda.is_available() else "cpu")
        else:
            self.device = torch.device(cfg.device)
        if self.world > 1 and not dist.is_initialized():
            if self.device.type == "cuda":
                torch.cuda.set_device(self.device)
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")

        self.denoiser = denoiser.to(self.device)
        self.ema = copy.deepcopy(self.denoiser).eval().requires_grad_(False)
        self.opt = torch.optim.AdamW(self.denoiser.parameters(), lr=cfg.lr, betas=cfg.betas,
                                     weight_decay=cfg.weight_decay)
        self.step = 0
        self.losses: list[float] = []  # this process's per-step mean loss
        if not self._resume() and cfg.measure_sigma_data:
            sd = estimate_sigma_data(dataset, seed=cfg.seed)
            if not sd > 0:
                raise ValueError(f"data std is {sd}: cannot train on constant data")
            self.denoiser.sigma_data = self.ema.sigma_data = sd

        model: nn.Module = self.denoiser
        if self.world > 1:
            model = nn.parallel.DistributedDataParallel(model)  # inputs already on the right device
        self.model = torch.compile(model) if cfg.compile else model

    # -- checkpoints -------------------------------------------------------------------------
    def save(self) -> None:
        if self.cfg.out_dir is None or self.rank != 0:
            return
        tensors = {**module_tensors(self.denoiser, "model."), **module_tensors(self.ema, "ema.")}
        opt_tensors, opt_state = checkpoints.optimizer_to_flat(self.opt)
        state = {"sigma_data": self.denoiser.sigma_data, "train_config": asdict(self.cfg), **opt_state}
        checkpoints.save_resume(self.cfg.out_dir, self.step, {**tensors, **opt_tensors}, state)

    def _resume(self) -> bool:
        found = None if self.cfg.out_dir is None else checkpoints.load_resume(self.cfg.out_dir, self.device)
        if found is None:
            return False
        tensors, state = found
        for prefix, module in (("model.", self.denoiser), ("ema.", self.ema)):
            module.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
            module.sigma_data = float(state["sigma_data"])
        checkpoints.optimizer_from_flat(self.opt, tensors, state)
        self.step = int(state["step"])
        return True

    # -- training ----------------------------------------------------------------------------
    def _seed(self, step: int) -> int:
        return (self.cfg.seed * 1_000_003 + step) * 4099

    def batch_indices(self, step: int) -> Tensor:
        """This rank's dataset indices at `step`: a pure function of the step (resume and workers agree)."""
        g_idx = torch.Generator().manual_seed(self._seed(step))
        return torch.randint(len(self.dataset), (self.cfg.batch_size,), generator=g_idx)[self.rank::self.world]

    def train_step(self, batch: tuple[Tensor, Conditioning | None, Extras] | None = None) -> tuple[float, float]:
        """One optimiser step on `batch` (built here from this step's indices when not given)."""
        cfg = self.cfg
        g_noise = torch.Generator(self.device).manual_seed(self._seed(self.step) + 1 + self.rank)
        x0, cond, extras = _batch(self.dataset, self.batch_indices(self.step)) if batch is None else batch
        x0 = x0.to(self.device, torch.float32, non_blocking=True)
        cond = None if cond is None else cond.map(lambda t: t.to(self.device, non_blocking=True))
        more = {} if extras is None else {"extras": {k: v.to(self.device, non_blocking=True) for k, v in extras.items()}}
        lr = cfg.lr * min(1.0, (self.step + 1) / cfg.warmup_steps) if cfg.warmup_steps else cfg.lr
        for group in self.opt.param_groups:
            group["lr"] = lr

        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda" and cfg.bf16):
            loss = self.loss_fn(self.model, x0, cond, generator=g_noise, **more).mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.denoiser.parameters(), cfg.grad_clip or math.inf)
        self.opt.step()

        decay = min(cfg.ema_decay, (1 + self.step) / (10 + self.step))
        with torch.no_grad():
            for p_ema, p in zip(self.ema.parameters(), self.denoiser.parameters()):
                p_ema.lerp_(p, 1 - decay)
            for b_ema, b in zip(self.ema.buffers(), self.denoiser.buffers()):
                b_ema.copy_(b)
        self.step += 1
        return float(loss.detach()), float(grad_norm)

    def _prefetched(self, until: int) -> Iterator[tuple[Tensor, Conditioning | None, Extras]] | None:
        """The batches of steps self.step..until built by cfg.workers processes, in order (None: no workers)."""
        if not self.cfg.workers:
            return None
        steps = (self.batch_indices(step).tolist() for step in range(self.step, until))  # drawn as the loader asks
        return iter(DataLoader(self.dataset, batch_sampler=steps, num_workers=self.cfg.workers, collate_fn=_collate,
                               prefetch_factor=4))

    def train(self, until: int | None = None) -> list[float]:
        """Train up to step `until` (default cfg.steps), checkpointing on the way; returns this call's losses."""
        cfg = self.cfg
        until = cfg.steps if until is None else until
        out = Path(cfg.out_dir) if cfg.out_dir else None
        log = None
        if out is not None and self.rank == 0:
            out.mkdir(parents=True, exist_ok=True)
            new = not (out / "metrics.csv").exists()
            log = open(out / "metrics.csv", "a", newline="")
            writer = csv.writer(log)
            if new:
                writer.writerow(["step", "loss", "grad_norm", "lr", "sec_per_step"])
        bar = tqdm(total=until, initial=self.step, disable=not cfg.progress or self.rank != 0, desc="train")
        losses: list[float] = []
        self.denoiser.train()
        try:
            t0 = time.perf_counter()
            batches = self._prefetched(until)
            while self.step < until:
                loss, grad_norm = self.train_step(None if batches is None else next(batches))
                losses.append(loss)
                bar.update(1)
                if self.step % cfg.log_every == 0:
                    dt = (time.perf_counter() - t0) / cfg.log_every
                    t0 = time.perf_counter()
                    bar.set_postfix(loss=f"{loss:.4f}")
                    if log is not None:
                        writer.writerow([self.step, f"{loss:.6g}", f"{grad_norm:.6g}",
                                         f"{self.opt.param_groups[0]['lr']:.6g}", f"{dt:.4g}"])
                        log.flush()
                if cfg.ckpt_every and self.step % cfg.ckpt_every == 0:
                    self.save()
            if self.step == cfg.steps and out is not None:
                self.save()
                if self.rank == 0:
                    save_inference(out / "ema.safetensors", self.ema, {"train_config": asdict(cfg)})
        finally:
            bar.close()
            if log is not None:
                log.close()
        self.losses.extend(losses)
        return losses


def train(denoiser: Denoiser, dataset: Dataset, loss_fn: LossFn, cfg: TrainConfig) -> Denoiser:
    """Run (or resume) a whole training; returns the EMA denoiser."""
    trainer = Trainer(denoiser, dataset, loss_fn, cfg)
    trainer.train()
    return trainer.ema


__all__ = ["TrainConfig", "Trainer", "train", "estimate_sigma_data"]
