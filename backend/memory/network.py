"""The memory network: what a world has shown so far, in a bounded set of tokens (first called Pluto).

Three levels, all D-wide tokens:

* world: ``world_slots`` slots shared by the whole world;
* region: one bank of ``region_slots`` slots per region of ``region_tiles``² tiles (``backend.world.memory_state``
  keeps at most ``max_regions`` banks and folds the least recently written one into the world level);
* neighbourhood: the tokens of stored tiles around a window, encoded on the fly and never stored.

A write encodes a tile (base-level heights + the noise level it was augmented with, as GameNGen's
context noise) into ``grid² + 1`` tokens; every slot of a bank attends over them for a candidate, a learned
gate g = sigmoid(.) scores every slot, and only the ``update_slots`` slots with the highest gate move:
s <- s + g (c - s). Every bank starts from learned baseline slots. A read gives the denoiser's
cross-attention the world bank, the window's region bank, a token for where the window lies in its region
and the 3 x 3 neighbourhood's tile tokens, each with a level embedding.

The same network serves voxel worlds (``dims=3``): a "tile" is then a 32³ chunk as the voxel model's folded
channels, regions are ``region_tiles``³ chunks and the neighbourhood the 3 x 3 x 3 chunks around a window.

Shapes: tiles [N, C, n, n] (dims=2; n = ``tile_cells`` base cells, C = ``channels``) or [N, C, n, n, n] (dims=3),
tokens [N, K, D] (K = grid^dims + 1), banks [B, S, D]. Offsets are (row, col) fractions at dims=2 ((z, row,
col) at dims=3): of a region for the query token, of a tile for neighbours.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from itertools import product
from typing import Any

import torch
from torch import Tensor, nn

from backend.diffusion.preconditioning import Conditioning, Denoiser


def neighbour_offsets(dims: int) -> tuple[tuple[int, ...], ...]:
    """The tiles read around a window, as offsets in tiles, row-major: 3 x 3 at dims=2, 3 x 3 x 3 at dims=3."""
    return tuple(product((-1, 0, 1), repeat=dims))


NEIGHBOURS = neighbour_offsets(2)  # (dy, dx) of a heightfield world's tiles around a window
LEVELS = ("world", "region", "query", "neighbour")
# Files name the memory network "pluto" (its first name): the recipe key and the weights' prefix stay so,
# so the shipped weights, training runs and every world made with them open unchanged.
RECIPE_KEY = STORED_NAME = "pluto"


@dataclass(frozen=True)
class MemoryConfig:
    dim: int = 64  # D: width of every memory token (the U-Net's memory_dim)
    tile_cells: int = 64  # base cells per tile side (the base model's window)
    grid: int = 4  # the encoder's patch grid: grid² patch tokens + 1 summary token per tile
    encoder_channels: int = 32
    world_slots: int = 16
    region_slots: int = 16
    region_tiles: int = 2  # a region is region_tiles x region_tiles tiles
    max_regions: int = 16  # region banks kept per world (memory size bound)
    update_slots: int = 4  # k: slots one write may change per bank (sparse update)
    write_sigma: float = 0.1  # context noise level of tiles written at serving time (GameNGen augmentation)
    dims: int = 2  # 2: heightfield tiles; 3: voxel chunks (regions of region_tiles³ chunks, 27 neighbours)
    channels: int = 1  # channels of a tile: 1 height; a voxel chunk's folded feature channels

    def __post_init__(self) -> None:
        if self.dims not in (2, 3) or self.channels < 1:
            raise ValueError(f"dims must be 2 or 3 and channels >= 1, got {self.dims}, {self.channels}")
        if self.tile_cells % self.grid or (self.tile_cells // self.grid) & (self.tile_cells // self.grid - 1):
            raise ValueError(f"tile_cells / grid must be a power of two, got {self.tile_cells} / {self.grid}")
        if not 1 <= self.update_slots <= min(self.world_slots, self.region_slots):
            raise ValueError(f"update_slots must be in [1, {min(self.world_slots, self.region_slots)}], "
                             f"got {self.update_slots}")
        if self.max_regions < 1 or self.region_tiles < 1:
            raise ValueError(f"max_regions and region_tiles must be >= 1, got {self.max_regions}, {self.region_tiles}")

    @property
    def tile_tokens(self) -> int:
        return self.grid**self.dims + 1

    @property
    def neighbours(self) -> tuple[tuple[int, ...], ...]:
        return neighbour_offsets(self.dims)

    @property
    def read_tokens(self) -> int:
        """T: tokens one window reads (world + region + query + 3^dims neighbour tiles)."""
        return self.world_slots + self.region_slots + 1 + len(self.neighbours) * self.tile_tokens

    def bound_bytes(self) -> int:
        """The most float32 bytes a world's memory slots can take, however many tiles were written."""
        return (self.world_slots + self.max_regions * self.region_slots) * self.dim * 4


def _mlp(d_in: int, d: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, d), nn.SiLU(), nn.Linear(d, d))


def _fourier(offset: Tensor) -> Tensor:
    """[..., d] offsets -> [..., 7 d]: the offsets and sin/cos at three octaves (smooth in position)."""
    freqs = offset[..., None] * (math.pi * torch.tensor([1.0, 2.0, 4.0], device=offset.device))
    return torch.cat([offset, freqs.sin().flatten(-2), freqs.cos().flatten(-2)], dim=-1)


def noise_level(sigma: Tensor) -> Tensor:
    """c_noise of a context noise level (0 allowed): log(sigma + 1e-3) / 4, as the denoiser's."""
    return (sigma + 1e-3).log() / 4


class TileEncoder(nn.Module):
    """A tile [N, C, *n] and its context noise level [N] -> [N, grid^dims + 1, D] tokens.

    No normalisation layers: the absolute level of a tile is information (a plateau is high), and a
    summary token carries each channel's mean, spread and range explicitly.
    """

    def __init__(self, cfg: MemoryConfig):
        super().__init__()
        c, d = cfg.encoder_channels, cfg.dim
        conv = (nn.Conv2d, nn.Conv3d)[cfg.dims - 2]
        downs = int(math.log2(cfg.tile_cells // cfg.grid))
        chans = [c] + [c if i == 0 else 2 * c for i in range(downs)]  # tile_cells -> grid by stride-2 convs
        layers: list[nn.Module] = [conv(cfg.channels + 1, c, 3, padding=1), nn.SiLU()]
        for c_in, c_out in zip(chans[:-1], chans[1:]):
            layers += [conv(c_in, c_out, 3, stride=2, padding=1), nn.SiLU()]
        layers.append(conv(chans[-1], d, 1))
        self.conv = nn.Sequential(*layers)
        self.position = nn.Parameter(torch.randn(cfg.grid**cfg.dims, d) * 0.02)
        self.summary = _mlp(4 * cfg.channels + 1, d)
        self.shape = (cfg.channels,) + (cfg.tile_cells,) * cfg.dims

    def forward(self, x: Tensor, sigma: Tensor) -> Tensor:
        if tuple(x.shape[1:]) != self.shape:
            raise ValueError(f"tiles must be [N, {', '.join(map(str, self.shape))}], got {tuple(x.shape)}")
        level = noise_level(sigma.to(x.dtype)).reshape(-1, *[1] * (x.ndim - 1))
        h = self.conv(torch.cat([x, level.expand_as(x[:, :1])], dim=1))  # [N, D, *grid]
        patches = h.flatten(2).transpose(1, 2) + self.position  # [N, grid^dims, D]
        flat = x.flatten(2)  # [N, C, cells]
        stats = torch.stack([flat.mean(2), flat.std(2), flat.amin(2), flat.amax(2)], dim=2).flatten(1)
        return torch.cat([patches, self.summary(torch.cat([stats, level.flatten(1)], dim=1))[:, None]], dim=1)


class GatedWriter(nn.Module):
    """slots [B, S, D] + new tokens [B, N, D] -> slots with only the k highest-gated slots moved."""

    def __init__(self, cfg: MemoryConfig):
        super().__init__()
        d = cfg.dim
        self.norm_slots, self.norm_tokens = nn.LayerNorm(d), nn.LayerNorm(d)
        self.q, self.k, self.v = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.candidate = _mlp(2 * d, d)
        self.gate = nn.Linear(2 * d, 1)
        self.update_slots = cfg.update_slots

    def forward(self, slots: Tensor, tokens: Tensor, active: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(new slots, gates [B, S]); samples with active == False [B] keep their slots exactly."""
        s = self.norm_slots(slots)
        t = self.norm_tokens(tokens)
        attn = torch.softmax(self.q(s) @ self.k(t).transpose(1, 2) / math.sqrt(s.shape[-1]), dim=-1)
        c = attn @ self.v(t)  # [B, S, D] what each slot reads from the new tile
        both = torch.cat([s, c], dim=-1)
        candidate = c + self.candidate(both)
        gate = torch.sigmoid(self.gate(both)).squeeze(-1)  # [B, S]
        chosen = torch.zeros_like(gate, dtype=torch.bool).scatter(1, gate.topk(self.update_slots, dim=1).indices, True)
        if active is not None:
            chosen = chosen & active.reshape(-1, 1).bool()
        moved = slots + gate[..., None] * (candidate - slots)
        return torch.where(chosen[..., None], moved, slots), gate


class MemoryNetwork(nn.Module):
    """The memory's learned parts: tile encoder, gated writer, baseline slots and the read embeddings."""

    def __init__(self, cfg: MemoryConfig):
        super().__init__()
        self.config = cfg
        d = cfg.dim
        self.encoder = TileEncoder(cfg)
        self.writer = GatedWriter(cfg)
        self.world_baseline = nn.Parameter(torch.randn(cfg.world_slots, d) * 0.5)
        self.region_baseline = nn.Parameter(torch.randn(cfg.region_slots, d) * 0.5)
        self.level = nn.Parameter(torch.randn(len(LEVELS), d) * 0.02)
        self.query = _mlp(7 * cfg.dims, d)
        self.relative = _mlp(7 * cfg.dims, d)
        self.absent = nn.Parameter(torch.randn(cfg.tile_tokens, d) * 0.02)  # a neighbour never written
        self.out_norm = nn.LayerNorm(d)

    def encode(self, tiles: Tensor, sigma: Tensor) -> Tensor:
        """[N, C, *n] tiles (already noised by `sigma` [N]) -> [N, K, D]."""
        return self.encoder(tiles, sigma)

    def write(self, slots: Tensor, tokens: Tensor, active: Tensor | None = None) -> Tensor:
        """Sparse gated update of banks [B, S, D] with tokens [B, N, D]."""
        return self.writer(slots, tokens, active)[0]

    def baseline(self, level: str, batch: int) -> Tensor:
        """Fresh banks [batch, S, D] of `level` ("world" or "region"): the learned starting memory."""
        slots = self.world_baseline if level == "world" else self.region_baseline
        return slots[None].expand(batch, -1, -1)

    def read(self, world: Tensor, region: Tensor, offset: Tensor, neighbours: Tensor, present: Tensor,
             relative: Tensor) -> Tensor:
        """Tokens [B, T, D] for the denoiser.

        world [B, Sw, D], region [B, Sr, D]; offset [B, dims]: the window centre in its region (0..1);
        neighbours [B, 3^dims, K, D] tile tokens (any value where absent), present [B, 3^dims], relative
        [B, 3^dims, dims]: each neighbour tile's origin minus the window's origin, in tiles ((z,) row, col).
        """
        level = self.level
        nb = torch.where(present.bool()[..., None, None], neighbours, self.absent)
        nb = nb + self.relative(_fourier(relative))[:, :, None] + level[3]
        query = self.query(_fourier(offset))[:, None] + level[2]
        tokens = torch.cat([world + level[0], region + level[1], query, nb.flatten(1, 2)], dim=1)
        return self.out_norm(tokens)


class MemoryDenoiser(nn.Module):
    """An EDM denoiser whose network reads memory tokens, with the memory that makes them.

    It is a denoiser (``forward(x, sigma, cond)``; cond.memory holds read tokens), so samplers, guidance and
    MultiDiffusion use it unchanged; ``network`` writes and reads the memory around it.
    """

    def __init__(self, denoiser: Denoiser, network: MemoryNetwork):
        super().__init__()
        mem_dim = denoiser.net.config.memory_dim
        if mem_dim != network.config.dim:
            raise ValueError(f"the network reads memory_dim={mem_dim} tokens but the memory network makes dim={network.config.dim}")
        self.denoiser = denoiser
        self.network = network
        self.register_state_dict_post_hook(_stored_names)
        self.register_load_state_dict_pre_hook(_loaded_names)

    @property
    def sigma_data(self) -> float:
        return self.denoiser.sigma_data

    @sigma_data.setter
    def sigma_data(self, value: float) -> None:
        self.denoiser.sigma_data = float(value)

    def forward(self, x: Tensor, sigma: Tensor | float, cond: Conditioning | None = None) -> Tensor:
        return self.denoiser(x, sigma, cond)

    def config_dict(self) -> dict[str, Any]:
        return {**self.denoiser.config_dict(), RECIPE_KEY: asdict(self.network.config)}


def _renamed(state: dict[str, Any], prefix: str, old: str, new: str) -> None:
    for key in [k for k in state if k.startswith(prefix + old + ".")]:
        state[prefix + new + key[len(prefix + old):]] = state.pop(key)


def _stored_names(module: nn.Module, state: dict[str, Any], prefix: str, local_metadata: Any) -> None:
    _renamed(state, prefix, "network", STORED_NAME)


def _loaded_names(module: nn.Module, state: dict[str, Any], prefix: str, *args: Any) -> None:
    _renamed(state, prefix, STORED_NAME, "network")


def null_tokens(cfg: MemoryConfig, n: int, device: torch.device | str = "cpu") -> Tensor:
    """[n, T, D] zeros: the memory-dropout null the model was trained with (a world without memory)."""
    return torch.zeros(n, cfg.read_tokens, cfg.dim, device=device)

