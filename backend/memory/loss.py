"""The memory's training loss: write a walk's context into fresh memory, denoise the next window with it.

Per sample (``backend.data.walks``): every context tile is noise-augmented with its own random level,
which the encoder sees (GameNGen's defence against autoregressive drift), written in walk order into
the world bank and its region's bank (sometimes a region bank is then folded into the world level, as
when a world drops its least recently written region), and the target window is denoised with the
read tokens (EDM loss; memory dropout trains the null). On a share of the batch the same walk is also
written from the denoiser's own x0 estimates of the noised context ("generated" tiles), and an alignment
loss pulls that memory onto the stop-gradient memory written from the clean tiles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from backend.diffusion.loss import EDMLoss
from backend.diffusion.preconditioning import Conditioning
from backend.memory.network import MemoryDenoiser, MemoryNetwork, null_tokens


def walk_memory(network: MemoryNetwork, tokens: Tensor, extras: dict[str, Tensor]) -> Tensor:
    """Read tokens [B, T, D] for each sample's target after writing its walk.

    tokens: [B, L, K, D] the encoded context tiles in walk order (see WalkDataset for the extras; the voxel
    walks, ``backend.data.voxel_walks``, give the same at dims=3).
    """
    batch, steps = tokens.shape[:2]
    rows = torch.arange(batch, device=tokens.device)
    world = network.baseline("world", batch)
    count = int(extras["region_count"][0])
    regions = network.baseline("region", batch * count).reshape(batch, count, *network.region_baseline.shape)
    for j in range(steps):
        active, index = extras["ctx_valid"][:, j], extras["ctx_region"][:, j]
        regions = regions.index_put((rows, index), network.write(regions[rows, index], tokens[:, j], active))
        world = network.write(world, tokens[:, j], active)
    fold = extras["fold_region"]
    folding, index = fold >= 0, fold.clamp(min=0)
    world = network.write(world, regions[rows, index], folding)
    fresh = torch.where(folding[:, None, None], network.baseline("region", batch), regions[rows, index])
    regions = regions.index_put((rows, index), fresh)
    target = regions[rows, extras["target_region"]]
    neighbours = tokens[rows[:, None], extras["nb_index"]]  # [B, 3^dims, K, D]
    return network.read(world, target, extras["offset"], neighbours, extras["nb_present"], extras["nb_relative"])


def _log_uniform(n: int, low: float, high: float, generator: torch.Generator | None, device: torch.device) -> Tensor:
    u = torch.rand(n, generator=generator, device=device)
    return (math.log(low) + u * (math.log(high) - math.log(low))).exp()


@dataclass
class MemoryLoss:
    """Callable for ``backend.training.loop``: loss(model, x0, cond, generator=, extras=) -> [B]."""

    edm: EDMLoss = field(default_factory=lambda: EDMLoss(
        cond_dropout={"style_weights": 0.1, "sliders": 0.2, "memory": 0.1}))
    align_weight: float = 1.0
    align_fraction: float = 0.25  # share of the batch also written from generated context
    clean_probability: float = 0.2  # context tiles written without noise augmentation
    augment_sigma: tuple[float, float] = (0.01, 1.0)  # log-uniform context noise levels otherwise
    generated_sigma: tuple[float, float] = (0.05, 1.0)  # noise levels of the x0 estimates standing for generated tiles

    def context_sigma(self, n: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
        sigma = _log_uniform(n, *self.augment_sigma, generator, device)
        return torch.where(torch.rand(n, generator=generator, device=device) < self.clean_probability,
                           torch.zeros_like(sigma), sigma)

    def __call__(self, model: MemoryDenoiser | torch.nn.Module, x0: Tensor, cond: Conditioning, *,
                 generator: torch.Generator | None = None, extras: dict[str, Tensor]) -> Tensor:
        inner: MemoryDenoiser = getattr(model, "module", model)
        network = inner.network
        context = extras["context"]  # [B, L, C, *n]
        batch, steps = context.shape[:2]
        cells = [1] * (context.ndim - 2)  # broadcasts a level over a tile
        sigma = self.context_sigma(batch * steps, generator, x0.device).reshape(batch, steps)
        noise = torch.randn(context.shape, generator=generator, device=x0.device)

        def encode(tiles: Tensor, rows: slice) -> Tensor:
            s = sigma[rows]
            noised = tiles + s.reshape(*s.shape, *cells) * noise[rows]
            return network.encode(noised.flatten(0, 1), s.flatten()).unflatten(0, s.shape)

        clean = walk_memory(network, encode(context, slice(None)), extras)
        loss = self.edm(model, x0, cond.replace(memory=clean), generator=generator)
        aligned = round(batch * self.align_fraction)
        if not (aligned and self.align_weight and steps):
            return loss
        part = slice(0, aligned)
        with torch.no_grad():  # the denoiser's own estimates of the context: tiles as a model makes them
            s = _log_uniform(aligned * steps, *self.generated_sigma, generator, x0.device)
            tiles = context[part].flatten(0, 1)
            noisy = tiles + s.reshape(-1, *cells) * torch.randn(tiles.shape, generator=generator, device=x0.device)
            c = cond.map(lambda t: t[part].repeat_interleave(steps, 0))
            generated = model(noisy, s, c.replace(memory=null_tokens(network.config, len(tiles), x0.device)))
        sub = {k: v[part] for k, v in extras.items()}
        from_generated = walk_memory(network, encode(generated.unflatten(0, (aligned, steps)), part), sub)
        align = ((from_generated - clean[part].detach()) ** 2).flatten(1).mean(1)
        return loss + self.align_weight * F.pad(align, (0, batch - aligned))
