"""One U-Net backbone for 1D curves, 2D heightfields and 3D voxel chunks.

The network knows only its inputs: the (already c_in-scaled) noisy field, c_noise, and the
conditioning tensors. Preconditioning, schedules and samplers live in `backend.diffusion`.

Shapes: x is [B, C, L] (dims=1), [B, C, H, W] (dims=2) or [B, C, D, H, W] (dims=3); every
spatial size must be divisible by 2 ** (len(channel_mult) - 1).
"""

from __future__ import annotations

import copy
import math
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from typing import Any, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_CONV: dict[int, type[nn.Module]] = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}

# A 2D map of at most this many cells convolves without oneDNN on a CPU: there oneDNN's set-up of every call
# (~0.1 ms a convolution, whatever its size: a 64-channel 3x3 on 2x2 cells took 96 us) costs more than the
# arithmetic. The base model at 16² (a 128² brush window's coarse map) runs 8.2 -> 5.7 ms a call; from 32² on
# oneDNN is as fast or faster (the models' maps and windows at 48², 64² and up keep it).
SMALL_MAP_CELLS = 24 * 24
# Serving's bfloat16 bodies (`UNet.serve_wide_maps_in`) pay from 64² on: the base model 10.9 vs 13.3 ms a call at
# 64², 21.9 vs 39.4 at 128²; the super-resolution 10.0 vs 14.3 at 128², 27 vs 52 at 256². Smaller maps convolve
# faster in float32 (the base at 24² 12.1 vs 4.5 ms: ATen has no fast bfloat16 kernel, oneDNN's set-up dominates).
WIDE_MAP_CELLS = 64 * 64


@contextmanager
def _convolutions_for(x: Tensor) -> Iterator[None]:
    """The convolution backend for a map like ``x``: ATen's own for small 2D maps on a CPU, oneDNN otherwise (only
    its on/off switch is touched: ``mkldnn.flags`` also resets its other settings, and its arguments differ across
    the torch versions the project accepts)."""
    small = x.device.type == "cpu" and x.ndim == 4 and x.shape[-2] * x.shape[-1] <= SMALL_MAP_CELLS
    was = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = was and not small
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = was


@dataclass(frozen=True)
class UNetConfig:
    dims: int = 2  # 1 = curves [B,C,L], 2 = heightfields [B,C,H,W], 3 = voxels [B,C,D,H,W]
    in_channels: int = 1  # channels of the field being denoised
    out_channels: int = 1  # usually == in_channels (the network predicts F for x0 = c_skip x + c_out F)
    cond_channels: int = 0  # spatial conditioning channels concatenated to the input (mask, known, low-res...)
    model_channels: int = 64  # channels at full resolution
    channel_mult: tuple[int, ...] = (1, 2, 2, 4)  # per level; level i runs at resolution / 2**i
    num_res_blocks: int = 2  # residual blocks per level in the encoder (decoder has one more)
    attn_levels: tuple[int, ...] = (3,)  # levels with self-attention (low resolutions only: cost is tokens^2)
    mid_attn: bool = True  # self-attention in the middle block; off for fully convolutional models run on
    # canvases far larger than their training crops (super-resolution), where it is global and quadratic
    head_channels: int = 32  # channels per attention head
    groups: int = 8  # GroupNorm groups (every level's channel count must be divisible by it)
    emb_channels: int = 0  # embedding width; 0 = 4 * model_channels
    fourier_scale: float = 16.0  # std of the random Fourier frequencies for c_noise (EDM's NCSN++ value)
    n_styles: int = 0  # style classes mixed by `style_weights` (0 = no style input)
    n_sliders: int = 0  # continuous sliders, neutral at 0 (0 = no slider input)
    memory_dim: int = 0  # width D_mem of memory tokens read by cross-attention (0 = no cross-attention)
    memory_emb: bool = False  # the memory tokens' mean also shifts the embedding (every ResBlock, as sliders do;
    # no bias, so the null memory, zeros, adds nothing): memory reaches a network whose one attention is its middle
    dropout: float = 0.0  # dropout inside residual blocks
    norm: str = "group"  # "group" (GroupNorm) or "none": without normalisation over the whole field a
    # network is local, so it tiles with a margin exactly (its output on a window ignores what lies beyond)

    def __post_init__(self) -> None:
        if self.dims not in _CONV:
            raise ValueError(f"dims must be 1, 2 or 3, got {self.dims}")
        if self.norm not in ("group", "none"):
            raise ValueError(f"norm must be 'group' or 'none', got {self.norm!r}")
        if not self.channel_mult:
            raise ValueError(f"channel_mult must not be empty, got {self.channel_mult}")
        for m in self.channel_mult:
            if (self.model_channels * m) % self.groups:
                raise ValueError(
                    f"model_channels * mult = {self.model_channels * m} not divisible by groups={self.groups}"
                )
        bad = [lv for lv in self.attn_levels if not 0 <= lv < len(self.channel_mult)]
        if bad:
            raise ValueError(f"attn_levels {bad} outside 0..{len(self.channel_mult) - 1}")

    @property
    def emb_width(self) -> int:
        return self.emb_channels or 4 * self.model_channels

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> UNetConfig:
        d = dict(d)
        for key in ("channel_mult", "attn_levels"):  # JSON turns tuples into lists
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> UNetConfig:
        """A named size (`tiny`, `small`, `base`) with any field overridden (dims, channels...)."""
        if name not in PRESETS:
            raise ValueError(f"unknown UNet preset {name!r}; choose from {sorted(PRESETS)}")
        return replace(PRESETS[name], **overrides)


PRESETS: dict[str, UNetConfig] = {
    # For tests: ~69k parameters at dims=2 (35k at 1D, 171k at 3D), attention at the low level.
    "tiny": UNetConfig(model_channels=16, channel_mult=(1, 1), num_res_blocks=1, attn_levels=(1,),
                       head_channels=16, emb_channels=32),
    # CPU-previewable: ~6.6M parameters at dims=2.
    "small": UNetConfig(model_channels=32, channel_mult=(1, 2, 4, 4), num_res_blocks=2, attn_levels=(3,)),
    # GPU training size: ~28M parameters at dims=2 (71M at 3D).
    "base": UNetConfig(model_channels=64, channel_mult=(1, 2, 4, 4), num_res_blocks=2, attn_levels=(2, 3)),
}


def _norm(cfg: UNetConfig, channels: int) -> nn.Module:
    return nn.GroupNorm(cfg.groups, channels) if cfg.norm == "group" else nn.Identity()


def _conv(dims: int, c_in: int, c_out: int, kernel: int = 3, stride: int = 1) -> nn.Module:
    return _CONV[dims](c_in, c_out, kernel, stride=stride, padding=kernel // 2)


class FourierEmbedding(nn.Module):
    """Random Fourier features of c_noise (EDM NCSN++): smooth in log-sigma, fixed by a seed."""

    def __init__(self, channels: int, scale: float):
        super().__init__()
        g = torch.Generator().manual_seed(0)  # fixed so two builds of one config agree before loading
        self.register_buffer("freqs", torch.randn(channels // 2, generator=g) * scale)

    def forward(self, c_noise: Tensor) -> Tensor:  # [B] -> [B, channels]
        x = c_noise.float().outer(2 * math.pi * self.freqs)
        return torch.cat([x.cos(), x.sin()], dim=1)


class ResBlock(nn.Module):
    """GroupNorm (or none)-SiLU-conv twice, with the embedding as a per-channel scale and shift."""

    def __init__(self, cfg: UNetConfig, c_in: int, c_out: int):
        super().__init__()
        self.norm0 = _norm(cfg, c_in)
        self.conv0 = _conv(cfg.dims, c_in, c_out)
        self.affine = nn.Linear(cfg.emb_width, 2 * c_out)
        self.norm1 = _norm(cfg, c_out)
        self.dropout = nn.Dropout(cfg.dropout)
        self.conv1 = _conv(cfg.dims, c_out, c_out)
        self.skip = _conv(cfg.dims, c_in, c_out, kernel=1) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:  # x: [B, c_in, *S], emb: [B, E]
        # in inference the activations overwrite their fresh inputs (training needs those for the gradient; without
        # normalisation the first input is x itself, which the skip still reads), and the skip adds into the second
        # conv's fresh output: 6 % and 4 % of a 256² super-resolution call, whose time goes into moving activations
        in_place = not torch.is_grad_enabled()
        h = self.conv0(F.silu(self.norm0(x), inplace=in_place and not isinstance(self.norm0, nn.Identity)))
        scale, shift = self.affine(emb).view(*emb.shape[:1], -1, *[1] * (x.ndim - 2)).chunk(2, dim=1)
        h = F.silu(self._modulated(h, scale, shift), inplace=in_place)
        h = self.conv1(self.dropout(h))
        return h.add_(self.skip(x)) if in_place else self.skip(x) + h

    def _modulated(self, h: Tensor, scale: Tensor, shift: Tensor) -> Tensor:
        """norm1(h) * (1 + scale) + shift. Serving's bfloat16 folds the scale and shift into the group norm's affine,
        a sample at a time: a CPU's broadcast multiply-add over 16 bfloat16 channels costs three norms (1.19 vs
        0.41 ms at 288²). Float32 keeps the plain form, the training forward's numbers exactly."""
        norm = self.norm1
        if h.dtype != torch.bfloat16 or torch.is_grad_enabled() or not isinstance(norm, nn.GroupNorm):
            return torch.addcmul(shift, norm(h), scale + 1)
        gain = scale.flatten(1) + 1  # [B, C]
        weight, bias = norm.weight * gain, norm.bias * gain + shift.flatten(1)
        parts = [F.group_norm(h[i:i + 1], norm.num_groups, weight[i], bias[i], norm.eps) for i in range(len(h))]
        return parts[0] if len(parts) == 1 else torch.cat(parts)


class Attention(nn.Module):
    """Self-attention over all positions, then (if built and memory given) cross-attention to memory."""

    def __init__(self, cfg: UNetConfig, channels: int):
        super().__init__()
        self.heads = max(1, channels // cfg.head_channels)
        self.norm = nn.GroupNorm(cfg.groups, channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)
        self.cross = cfg.memory_dim > 0
        if self.cross:
            self.norm_x = nn.GroupNorm(cfg.groups, channels)
            self.q_x = nn.Linear(channels, channels)
            self.kv_x = nn.Linear(cfg.memory_dim, 2 * channels)
            self.proj_x = nn.Linear(channels, channels)

    def _split(self, t: Tensor) -> Tensor:  # [B, N, C] -> [B, heads, N, C / heads]
        return t.unflatten(2, (self.heads, -1)).transpose(1, 2)

    def _attend(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:  # -> [B, N, C]
        out = F.scaled_dot_product_attention(self._split(q), self._split(k), self._split(v))
        return out.transpose(1, 2).flatten(2)

    def forward(self, x: Tensor, memory: Tensor | None) -> Tensor:  # x: [B, C, *S], memory: [B, T, D_mem]
        shape = x.shape
        tokens = self.norm(x).flatten(2).transpose(1, 2)  # [B, N, C]
        q, k, v = self.qkv(tokens).chunk(3, dim=2)
        x = x + self.proj(self._attend(q, k, v)).transpose(1, 2).reshape(shape)
        if self.cross and memory is not None:
            tokens = self.norm_x(x).flatten(2).transpose(1, 2)
            k, v = self.kv_x(memory.to(tokens.dtype)).chunk(2, dim=2)  # [B, T, C] each
            x = x + self.proj_x(self._attend(self.q_x(tokens), k, v)).transpose(1, 2).reshape(shape)
        return x


class Block(nn.Module):
    """A ResBlock optionally followed by attention: the unit the encoder and decoder stack."""

    def __init__(self, cfg: UNetConfig, c_in: int, c_out: int, attn: bool):
        super().__init__()
        self.res = ResBlock(cfg, c_in, c_out)
        self.attn = Attention(cfg, c_out) if attn else None

    def forward(self, x: Tensor, emb: Tensor, memory: Tensor | None) -> Tensor:
        x = self.res(x, emb)
        return self.attn(x, memory) if self.attn is not None else x


class Downsample(nn.Module):
    def __init__(self, dims: int, channels: int):
        super().__init__()
        self.conv = _conv(dims, channels, channels, stride=2)

    def forward(self, x: Tensor) -> Tensor:  # [B, C, *S] -> [B, C, *S/2]
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, dims: int, channels: int):
        super().__init__()
        self.conv = _conv(dims, channels, channels)

    def forward(self, x: Tensor) -> Tensor:  # [B, C, *S] -> [B, C, *2S]; nearest+conv avoids checkerboards
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


EMBEDDINGS = ("noise_emb", "emb_mlp", "style_emb", "slider_emb", "memory_emb")  # UNet children computed in float32


class UNet(nn.Module):
    """ADM/EDM-style U-Net; `dims` picks Conv1d/2d/3d, everything else is dimension-agnostic."""

    def __init__(self, cfg: UNetConfig):
        super().__init__()
        self.config = cfg
        self.wide: UNet | None = None  # a copy for wide maps in another dtype (`serve_wide_maps_in`)
        ch, E = cfg.model_channels, cfg.emb_width
        self.noise_emb = FourierEmbedding(ch, cfg.fourier_scale)
        self.emb_mlp = nn.Sequential(nn.Linear(ch, E), nn.SiLU(), nn.Linear(E, E))
        # No bias: all-zero style weights / sliders contribute exactly nothing (the CFG null).
        self.style_emb = nn.Linear(cfg.n_styles, E, bias=False) if cfg.n_styles else None
        self.slider_emb = nn.Linear(cfg.n_sliders, E, bias=False) if cfg.n_sliders else None
        if cfg.memory_emb and not cfg.memory_dim:
            raise ValueError("memory_emb needs memory tokens (memory_dim > 0)")
        self.memory_emb = nn.Linear(cfg.memory_dim, E, bias=False) if cfg.memory_emb else None

        self.conv_in = _conv(cfg.dims, cfg.in_channels + cfg.cond_channels, ch)
        self.down = nn.ModuleList()
        skips = [ch]
        c = ch
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                self.down.append(Block(cfg, c, ch * mult, level in cfg.attn_levels))
                c = ch * mult
                skips.append(c)
            if level < len(cfg.channel_mult) - 1:
                self.down.append(Downsample(cfg.dims, c))
                skips.append(c)
        self.mid = nn.ModuleList([Block(cfg, c, c, attn=cfg.mid_attn), Block(cfg, c, c, attn=False)])
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.channel_mult))):
            for _ in range(cfg.num_res_blocks + 1):
                self.up.append(Block(cfg, c + skips.pop(), ch * mult, level in cfg.attn_levels))
                c = ch * mult
            if level > 0:
                self.up.append(Upsample(cfg.dims, c))
        self.norm_out = _norm(cfg, c)
        self.conv_out = _conv(cfg.dims, c, cfg.out_channels)

    def forward(
        self,
        x: Tensor,  # [B, in_channels, *S], already scaled by c_in
        c_noise: Tensor,  # [B]
        style_weights: Tensor | None = None,  # [B, n_styles], rows sum to 1, zeros = unconditional
        sliders: Tensor | None = None,  # [B, n_sliders], 0 = neutral
        spatial: Tensor | None = None,  # [B, cond_channels, *S]
        memory: Tensor | None = None,  # [B, T, memory_dim]
    ) -> Tensor:  # [B, out_channels, *S]
        cfg = self.config
        if x.ndim != cfg.dims + 2 or x.shape[1] != cfg.in_channels:
            raise ValueError(f"x shape {tuple(x.shape)} does not fit dims={cfg.dims}, in_channels={cfg.in_channels}")
        factor = 2 ** (len(cfg.channel_mult) - 1)
        if any(s % factor for s in x.shape[2:]):
            raise ValueError(f"spatial size {tuple(x.shape[2:])} not divisible by {factor}")
        if spatial is not None and not cfg.cond_channels:
            raise ValueError(f"spatial conditioning {tuple(spatial.shape)} given but cond_channels=0")
        if cfg.cond_channels:
            if spatial is None or spatial.shape[1] != cfg.cond_channels or spatial.shape[2:] != x.shape[2:]:
                got = None if spatial is None else tuple(spatial.shape)
                raise ValueError(f"spatial conditioning must be [B, {cfg.cond_channels}, *{tuple(x.shape[2:])}], got {got}")
            x = torch.cat([x, spatial.to(x.dtype)], dim=1)

        emb = self.emb_mlp(self.noise_emb(c_noise.expand(x.shape[0])))  # [B, E]
        for name, layer, value in (("style_weights", self.style_emb, style_weights),
                                   ("sliders", self.slider_emb, sliders)):
            if value is None:
                continue  # absent = unconditional, same as zeros
            if layer is None or value.shape != (x.shape[0], layer.in_features):
                want = None if layer is None else (x.shape[0], layer.in_features)
                raise ValueError(f"{name} shape {tuple(value.shape)} does not fit this network (expects {want})")
            emb = emb + layer(value.to(emb.dtype))

        if memory is not None and (cfg.memory_dim == 0 or memory.ndim != 3 or memory.shape[2] != cfg.memory_dim):
            raise ValueError(f"memory shape {tuple(memory.shape)} does not fit memory_dim={cfg.memory_dim}")
        if self.memory_emb is not None and memory is not None:
            emb = emb + self.memory_emb(memory.mean(dim=1).to(emb.dtype))
        body = self if self.wide is None or x.shape[2:].numel() < WIDE_MAP_CELLS else self.wide
        dtype = body.conv_in.weight.dtype
        with _convolutions_for(x):
            out = body._layers(x.to(dtype), emb.to(dtype), memory)
        return out if dtype == x.dtype else out.to(x.dtype)

    def run_body_in(self, dtype: torch.dtype) -> UNet:
        """Hold the convolutional body's weights (and so run its activations) in ``dtype``; the noise, style,
        slider and memory embeddings stay float32 (the Fourier features' phases need its precision)."""
        for name, child in self.named_children():
            if name not in EMBEDDINGS:
                child.to(dtype)
        return self

    def serve_wide_maps_in(self, dtype: torch.dtype) -> UNet:
        """Run maps of ``WIDE_MAP_CELLS`` or more through a copy whose body is in ``dtype``, smaller ones as they
        are. The copy is no submodule: state dicts, parameter counts and ``.to()`` see only this net's weights
        (serving makes the copy after moving the net to its device)."""
        object.__setattr__(self, "wide", None)  # a copy of a copy stays single
        object.__setattr__(self, "wide", copy.deepcopy(self).run_body_in(dtype))
        return self

    def _layers(self, x: Tensor, emb: Tensor, memory: Tensor | None) -> Tensor:
        h = self.conv_in(x)
        hs = [h]
        for m in self.down:
            h = m(h, emb, memory) if isinstance(m, Block) else m(h)
            hs.append(h)
        for m in self.mid:
            h = m(h, emb, memory)
        for m in self.up:
            h = m(torch.cat([h, hs.pop()], dim=1), emb, memory) if isinstance(m, Block) else m(h)
        return self.conv_out(F.silu(self.norm_out(h)))


def build_unet(preset: str = "tiny", **overrides: Any) -> UNet:
    """Shorthand for `UNet(UNetConfig.preset(preset, **overrides))`."""
    return UNet(UNetConfig.preset(preset, **overrides))


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


__all__ = ["UNetConfig", "PRESETS", "UNet", "build_unet", "count_params"]
