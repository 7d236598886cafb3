"""MultiDiffusion (Bar-Tal et al. 2023): run a denoiser on overlapping windows of a larger canvas.

The networks are trained on fixed-size maps; a bigger canvas is cut into windows of that size,
the windows are denoised as batches, and their x0 estimates are merged per cell with weights that
fall smoothly to near zero at window edges. Doing this at *every* sampler step makes neighbouring
windows agree on the overlap, so the result has no seams. The wrapper has the denoiser signature
D(x, sigma, cond), so samplers and the guidance wrappers are used unchanged.

Windows sit on a grid anchored at ``origin`` (the canvas's offset in world cells): two canvases
that cover the same world cells place their inner windows identically, which is what lets a world
tile be generated from its neighbourhood alone (``backend.world.tiles``).
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor, nn

from backend.diffusion.preconditioning import Conditioning
from backend.diffusion.samplers import DenoiserFn

Window = tuple[int, int]  # (row, col) of a window's top-left cell in the canvas


def window_starts(length: int, window: int, stride: int, offset: int = 0) -> list[int]:
    """Starts covering [0, length): every start with (start + offset) % stride == 0 that fits,
    plus windows flush with either end where the grid leaves cells uncovered.

    A canvas no longer than the window gets one window at 0 (of the canvas's own length).
    """
    if length <= window:
        return [0]
    first = (-offset) % stride
    starts = list(range(first, length - window + 1, stride))
    if not starts or starts[0] > 0:
        starts.insert(0, 0)
    if starts[-1] + window < length:
        starts.append(length - window)
    return starts


def even_windows(length: int, target: int, overlap: int, align: int = 16) -> tuple[int, int]:
    """(window, stride) of the fewest windows of about ``target`` cells that cover ``length`` with at least
    ``overlap`` cells shared between neighbours, spread evenly (no thin last one); window and stride are
    multiples of ``align`` (``window_starts`` puts the last window flush with the end)."""
    if length <= target:
        return length, length
    count = math.ceil((length - overlap) / (target - overlap))
    window = math.ceil(math.ceil((length + (count - 1) * overlap) / count) / align) * align
    return window, math.ceil((length - window) / (count - 1) / align) * align


def ramp(n: int, overlap: int, rise: bool = True, fall: bool = True) -> Tensor:
    """1-D weights of a window of n cells: a raised cosine up over `overlap` cells at the start (if
    `rise`) and down at the end (if `fall`), 1 elsewhere.

    Never zero; window ends on the canvas border stay flat (no other window shares those cells).
    """
    i = torch.arange(n, dtype=torch.float64) + 0.5
    up = i if rise else torch.full_like(i, float(n))
    down = n - i if fall else torch.full_like(i, float(n))
    linear = torch.minimum(up, down) / max(overlap, 1)
    return (torch.sin(linear.clamp(max=1.0) * math.pi / 2) ** 2).float()


class MultiDiffusion(nn.Module):
    """D on a [B, C, H, W] canvas as the weighted merge of D on `window`² windows `stride` apart.

    Conditioning.spatial ([B, Cs, H, W]) is windowed with x; the other fields are repeated per
    window. At most `max_batch` windows (times B) go through the network at once (memory bound).
    With one window covering the canvas it calls the denoiser once, so it equals it exactly.
    ``interrupt`` (if given) is called before every batch of windows and may raise ``Cancelled``:
    one step over a huge canvas takes long, and an artist's cancel must not wait for it.
    ``window_memory`` (if given) maps the windows' top-left cells in world coordinates (origin + offset)
    to memory tokens [n, T, D] that replace Conditioning.memory per window: what a window remembers
    depends on where it lies in the world (``backend.world.memory_state``), not on the canvas it is part of.
    """

    def __init__(self, denoiser: DenoiserFn, window: int, stride: int, origin: tuple[int, int] = (0, 0),
                 max_batch: int = 32, interrupt: Callable[[], None] | None = None,
                 window_memory: Callable[[list[Window]], Tensor] | None = None):
        super().__init__()
        if window < 1 or not 1 <= stride <= window:
            raise ValueError(f"need window >= 1 and 1 <= stride <= window, got window={window}, stride={stride}")
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.denoiser = denoiser
        self.window = window
        self.stride = stride
        self.origin = origin
        self.max_batch = max_batch
        self.interrupt = interrupt
        self.window_memory = window_memory

    def windows(self, height: int, width: int) -> list[Window]:
        rows = window_starts(height, self.window, self.stride, self.origin[0])
        cols = window_starts(width, self.window, self.stride, self.origin[1])
        return [(r, c) for r in rows for c in cols]

    def weights(self, height: int, width: int, win: Window) -> Tensor:
        """[h, w] weight of the window at `win` (before normalisation by the summed weights)."""
        overlap = self.window - self.stride
        h, w = min(height, self.window), min(width, self.window)
        r, c = win
        rows = ramp(h, overlap, rise=r > 0, fall=r + h < height)
        cols = ramp(w, overlap, rise=c > 0, fall=c + w < width)
        return rows[:, None] * cols[None, :]

    def forward(self, x: Tensor, sigma: Tensor | float, cond: Conditioning | None = None) -> Tensor:
        if x.ndim != 4:
            raise ValueError(f"MultiDiffusion needs x of shape [B, C, H, W], got {tuple(x.shape)}")
        batch, _, height, width = x.shape
        wins = self.windows(height, width)
        if len(wins) == 1 and self.window_memory is None:
            return self.denoiser(x, sigma, cond)
        sigma = torch.as_tensor(sigma, dtype=torch.float32, device=x.device).reshape(-1).expand(batch)
        h, w = min(height, self.window), min(width, self.window)
        total = torch.zeros(batch, 1, height, width, device=x.device)
        merged: Tensor | None = None
        per_chunk = max(1, self.max_batch // batch)
        for k in range(0, len(wins), per_chunk):
            if self.interrupt is not None:
                self.interrupt()
            chunk = wins[k:k + per_chunk]
            wcond = None if cond is None else _window_cond(cond, chunk, h, w)
            if self.window_memory is not None:
                memory = self.window_memory([(self.origin[0] + r, self.origin[1] + c) for r, c in chunk])
                wcond = (wcond or Conditioning()).replace(memory=memory.to(x.device).repeat_interleave(batch, 0))
            out = self.denoiser(_crop(x, chunk, h, w), sigma.repeat(len(chunk)), wcond)
            if merged is None:
                merged = torch.zeros(batch, out.shape[1], height, width, device=x.device, dtype=out.dtype)
            for i, (r, c) in enumerate(chunk):
                weight = self.weights(height, width, (r, c)).to(x.device)
                merged[..., r:r + h, c:c + w] += weight * out[i * batch:(i + 1) * batch]
                total[..., r:r + h, c:c + w] += weight
        assert merged is not None
        return merged / total


def _crop(t: Tensor, wins: list[Window], h: int, w: int) -> Tensor:
    """The windows of a [B, C, H, W] tensor stacked window-major: [len(wins) * B, C, h, w]."""
    return torch.cat([t[..., r:r + h, c:c + w] for r, c in wins])


def _window_cond(cond: Conditioning, wins: list[Window], h: int, w: int) -> Conditioning:
    """Spatial conditioning cut like x; per-map fields repeated once per window (same batch order)."""
    repeated = cond.replace(spatial=None).map(lambda t: t.repeat(len(wins), *[1] * (t.ndim - 1)))
    return repeated.replace(spatial=None if cond.spatial is None else _crop(cond.spatial, wins, h, w))
