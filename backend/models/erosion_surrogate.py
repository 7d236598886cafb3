"""The learned erosion surrogate: K steps of stream power and hillslope diffusion in one forward pass.

A small network on the shared U-Net backbone (no normalisation layers, so it is local and tiles with a
margin) reads the map's scaled heights, upstream area and one implicit K-long step of stream power (on
the fixed flow graph) and hillslope diffusion (``simulation.learned_steps.surrogate_inputs``) and
predicts what that step misses: the change after K physics steps is ``implicit + scale * network``. The
map is folded fold x fold into channels (pixel unshuffle) so the network runs at a fraction of the
resolution. A cheap gate (each tile's change in one implicit physics step, calibrated on rollouts) says
which tiles are settled.

The file is one safetensors: the network's weights, and in its metadata everything needed to rebuild it
(U-Net config, fold, horizons, the process and cell size it was trained on, the gate's bias and margin).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import Tensor, nn

from backend.models.inference import file_sha256, module_tensors, read_format_metadata, save_tensors
from backend.networks.unet import ResBlock, UNet, UNetConfig
from backend.simulation.landscape import SINGLE_FLOW, Routing, StreamPower
from backend.simulation.learned_steps import (MATURE_STEP, SURROGATE_CHANNELS, Fields, height_scale,
                                              step_rate, surrogate_inputs, tile_counts, windows)

SURROGATE_FORMAT = "worldsculpt.erosion_surrogate.v1"
WINDOW = 1152  # the network runs on windows of at most this many cells a side (memory), with a margin
# cells of context each side of a window (a multiple of the fold grid, so windows align): the network's reach,
# so windows give the whole map's output (on the report's 1024² world: 13 m apart at 64, 1.5 at 128, 0 at 192)
MARGIN = 192


@dataclass(frozen=True)
class GateConfig:
    """log10(tile's mean |change| / scale per step) ~ ``gate_feature`` + bias: the tile's first implicit step,
    the period's later steps smaller by the fitted bias (fitted on physics rollouts, slope 1 as measured:
    0.95 by free least squares, correlation 0.99)."""

    bias: float = 0.0
    margin: float = 0.5  # log10 safety added to the prediction before comparing with the tolerance
    tolerance: float = 1e-3  # a tile is settled when its mean |change| over the period is below this x scale


@dataclass(frozen=True)
class SurrogateConfig:
    unet: dict[str, Any]
    fold: int = 4  # pixel-unshuffle factor: the network runs at 1/fold resolution
    horizons: tuple[int, ...] = (1, 2, 4, 8, 10)  # what the network learned
    shipped: tuple[int, ...] | None = None  # the horizons calls use (benchmarks: >= 3x faster); None: all
    process: dict[str, float] = field(default_factory=lambda: process_dict(MATURE_STEP))  # what it learned
    # how its later steps gathered area (files from before the stage had a choice learned single flow)
    routing: dict[str, Any] = field(default_factory=lambda: asdict(SINGLE_FLOW))
    cell_size: float = 30.0
    gate: GateConfig = GateConfig()
    # the gated stage's physics budget: at most this share of a period's tiles, those where one K-jump and
    # shorter jumps differ most (surrogate_stage; reports/erosion_surrogate: the fallback criterion allows 30 %)
    fallback_share: float = 0.3

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SurrogateConfig:
        d = dict(d)
        d["horizons"] = tuple(d["horizons"])
        d["shipped"] = None if d.get("shipped") is None else tuple(d["shipped"])
        # files from before the implicit-step gate also carry a linear model's "coef" (their process is refused)
        d["gate"] = GateConfig(**{k: v for k, v in d.get("gate", {}).items() if k != "coef"})
        d.pop("trust_tolerance", None)  # files from before the share-capped fallback: a tolerance on a ratio
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def process_dict(process: StreamPower) -> dict[str, float]:
    """The per-step parameters a surrogate is trained on (its file records them; ``supports`` compares them)."""
    return {"incision": process.incision, "diffusion": process.diffusion, "area_exponent": process.area_exponent}


def horizon_code(horizon: Tensor) -> Tensor:
    """[B] step counts -> [B, 1] the slider the network reads: log2 K over log2 10 (1 = the mature stage)."""
    return (torch.log2(horizon.float()) / math.log2(10.0))[:, None]


class SurrogateNet(nn.Module):
    """Fold 2 x 2 into channels, the U-Net at half resolution, unfold: [B, 4, H, W] -> [B, 1, H, W]."""

    def __init__(self, config: SurrogateConfig):
        super().__init__()
        self.fold = config.fold
        self.unet = UNet(UNetConfig.from_dict(config.unet))
        unet = self.unet.config
        if unet.in_channels != len(SURROGATE_CHANNELS) * self.fold**2 or unet.out_channels != self.fold**2:
            raise ValueError(f"U-Net channels {unet.in_channels}/{unet.out_channels} do not fit fold {self.fold}")
        self.multiple = self.fold * 2 ** (len(unet.channel_mult) - 1)
        self._start_as_identity()

    def _start_as_identity(self) -> None:
        """Zero the last convolution of every residual block and the output: without normalisation layers the
        network then starts as the identity path (no exploding or dead activations) and predicts nothing, so
        training starts from the implicit step's answer (Fixup-style initialisation)."""
        for module in self.unet.modules():
            if isinstance(module, ResBlock):
                nn.init.zeros_(module.conv1.weight)
                nn.init.zeros_(module.conv1.bias)
        nn.init.zeros_(self.unet.conv_out.weight)
        nn.init.zeros_(self.unet.conv_out.bias)

    def forward(self, inputs: Tensor, horizon: Tensor) -> Tensor:
        x = F.pixel_unshuffle(inputs, self.fold)
        y = self.unet(x, torch.zeros(x.shape[0], device=x.device), sliders=horizon_code(horizon).to(x.device))
        return F.pixel_shuffle(y, self.fold)


def gate_feature(heights: np.ndarray, cell_size: float, process: StreamPower, tile: int) -> np.ndarray:
    """[tile rows, tile cols]: log10 of each tile's mean |change| in one implicit step
    (``learned_steps.step_rate``) / scale."""
    rate = step_rate(heights, cell_size, process) / height_scale(heights)
    rows, cols = tile_counts(heights.shape, tile)
    out = np.empty((rows, cols))
    for r in range(rows):
        for c in range(cols):
            out[r, c] = np.log10(rate[r * tile:(r + 1) * tile, c * tile:(c + 1) * tile].mean() + 1e-9)
    return out


def save_surrogate(path: str | Path, net: SurrogateNet, config: SurrogateConfig,
                   card: dict[str, Any] | None = None) -> None:
    meta = {"format": SURROGATE_FORMAT, "config": json.dumps(config.to_dict()), "card": json.dumps(card or {})}
    save_tensors(module_tensors(net), Path(path), meta)


def read_surrogate_config(path: str | Path) -> SurrogateConfig:
    return SurrogateConfig.from_dict(json.loads(read_format_metadata(path, SURROGATE_FORMAT)["config"]))


@dataclass
class ErosionSurrogate:
    """The learned erosion step behind ``simulation.learned_steps.SimulationStep`` (loaded, eval mode)."""

    net: SurrogateNet
    config: SurrogateConfig
    sha256: str = ""
    name: str = "surrogate"
    reads: tuple[str, ...] = ("heights",)
    writes: tuple[str, ...] = ("heights",)

    @classmethod
    def load(cls, path: str | Path, device: torch.device | str = "cpu") -> ErosionSurrogate:
        config = read_surrogate_config(path)
        net = SurrogateNet(config)
        net.load_state_dict(load_file(str(path), device="cpu"), strict=True)
        return cls(net.to(device).eval().requires_grad_(False), config, file_sha256(path))

    @property
    def horizons(self) -> tuple[int, ...]:
        """The jumps the stage makes with it (the shipped ones); ``supports`` also admits the rest it learned."""
        return self.config.shipped or self.config.horizons

    def process(self) -> StreamPower:
        return StreamPower(steps=1, routing=Routing(**self.config.routing), **self.config.process)

    def supports(self, process: StreamPower, cell_size: float, horizon: int) -> bool:
        """Only the process (its routing too) and cell size it was trained on, and the horizons on its ladder."""
        trained = self.process()
        same = process.routing == trained.routing and all(
            math.isclose(getattr(process, k), getattr(trained, k), rel_tol=1e-6)
            for k in ("incision", "diffusion", "area_exponent"))
        return same and math.isclose(cell_size, self.config.cell_size, rel_tol=1e-3) and horizon in self.config.horizons

    def correction(self, inputs: np.ndarray, horizon: int, window: int = WINDOW) -> np.ndarray:
        """The network's output [H, W] (in units of the map's scale) for inputs [4, H, W], run in windows."""
        device = next(self.net.parameters()).device
        out = np.zeros(inputs.shape[1:], np.float32)
        k = torch.tensor([horizon], device=device)
        with torch.no_grad():
            for outer, inner, core in windows(inputs.shape[1:], window, MARGIN, self.net.multiple):
                x = torch.from_numpy(np.ascontiguousarray(inputs[(slice(None), *outer)]))[None].to(device)
                pad = [(-s) % self.net.multiple for s in x.shape[2:]]
                y = self.net(F.pad(x, (0, pad[1], 0, pad[0])), k)[0, 0, :x.shape[2], :x.shape[3]]
                out[core] = y.cpu().numpy()[inner]
        return out

    def delta(self, fields: Fields, cell_size: float, process: StreamPower, horizon: int) -> Fields:
        if not self.supports(process, cell_size, horizon):
            raise ValueError(f"the surrogate was trained for {self.process()} at {self.config.cell_size} m "
                             f"and horizons {self.config.horizons}, not {process} at {cell_size} m, K={horizon}")
        heights = np.asarray(fields["heights"], np.float64)
        inputs, implicit, scale = surrogate_inputs(heights, cell_size, process, horizon)
        correction = self.correction(inputs, horizon).astype(np.float64)
        # the border is the base level: it only relaxes along itself (corners held), as the implicit step has it
        correction[[0, -1], :] = correction[:, [0, -1]] = 0.0
        # Both processes keep every height within the map's range (implicit stream power moves a cell to a mix of
        # its old height and its receiver's new one; backward-Euler diffusion with a held border has a maximum
        # principle), so the result is clipped to it. Unclipped, the corpus's held-out maps went up to 30 m below
        # their base level in one jump of 10 and ten chained jumps drifted: 0.027 of the change off physics'
        # (one jump 0.013); clipped 0.0011, and the hypsometric gap 0.019 -> 0.014.
        result = np.clip(heights + implicit + scale * correction, heights.min(), heights.max())
        return {"heights": result - heights}

    def settled(self, fields: Fields, cell_size: float, process: StreamPower, horizon: int,
                tile: int) -> np.ndarray:
        """The gate: the predicted mean |change| over the period (with a safety margin) below the tolerance."""
        heights = np.asarray(fields["heights"], np.float64)
        gate = self.config.gate
        predicted = gate_feature(heights, cell_size, process, tile) + gate.bias
        return predicted + gate.margin + math.log10(horizon) < math.log10(gate.tolerance)
