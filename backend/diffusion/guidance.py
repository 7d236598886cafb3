"""Guidance as denoiser wrappers (model -> model): samplers never change.

Every wrapper has the denoiser signature D(x, sigma, cond) -> x0 and can be stacked, e.g.
Inpainting(ClassifierFreeGuidance(denoiser, 3.0), known, mask).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from backend.diffusion.preconditioning import Conditioning
from backend.diffusion.samplers import DenoiserFn


def paste_known(x: Tensor, known: Tensor, mask: Tensor) -> Tensor:
    """x with `known` values copied exactly where mask == 1 (other mask values leave x alone)."""
    return torch.where(mask == 1, known.to(x.dtype), x)


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of the last two dims of x [..., H, W] (edges replicated)."""
    r = max(1, int(math.ceil(3 * sigma)))
    k = torch.exp(-torch.arange(-r, r + 1, dtype=x.dtype, device=x.device) ** 2 / (2 * sigma * sigma))
    k = (k / k.sum())[None, None]
    y = F.pad(x.reshape(-1, 1, *x.shape[-2:]), (r, r, r, r), mode="replicate")
    return F.conv2d(F.conv2d(y, k[..., None, :]), k[..., :, None]).reshape(x.shape)


class MismatchSpread:
    """`spread_mismatch` for one mask: the mask's blurs are computed once, since a sampler spreads a new
    gap at every step."""

    def __init__(self, mask: Tensor, reach: float):
        self.mask = mask
        scales = [reach / 2 ** k for k in range(int(math.log2(reach)) + 1)][::-1] if reach >= 1 else []
        self.scales = scales
        weights = [gaussian_blur(mask, s) for s in scales]
        self.norms = [w.clamp_min(1e-6) for w in weights]
        self.fades = [(2 * w).clamp(max=1) for w in weights]  # 1 up to the mask's edge, then down to 0

    def __call__(self, gap: Tensor) -> Tensor:
        fills = [gaussian_blur(gap * self.mask, s) / norm for s, norm in zip(self.scales, self.norms)]
        spread = torch.zeros_like(gap)
        for i, (fill, fade) in enumerate(zip(fills, self.fades)):
            band = fill - fills[i + 1] if i + 1 < len(fills) else fill
            spread = spread + band * fade
        return spread * (1 - self.mask)


def spread_mismatch(gap: Tensor, mask: Tensor, reach: float) -> Tensor:
    """A smooth continuation of `gap` (known minus estimate, read where mask is 1) into the other cells.

    Band by band (Gaussian scales 1, 2, 4 ... `reach` cells), the normalised convolution of the gap
    carries it outward and fades over that band's own scale: a mismatch of detail dies within a cell or
    two, one of level over `reach` cells, as in a membrane (Poisson) blend. At the mask's edge the bands
    add up to the local gap, so the generated side meets the known side instead of leaving a step.
    gap, mask: [..., H, W] (mask broadcastable); returns [..., H, W], zero where mask is 1.
    """
    return MismatchSpread(mask.expand_as(gap), reach)(gap)


class ClassifierFreeGuidance(nn.Module):
    """D = D_uncond + scale * (D_cond - D_uncond) (Ho & Salimans 2022).

    The unconditional branch nulls (zeros) the fields in `drop`, by default the style weights and
    sliders: the same nulls `EDMLoss.cond_dropout` trains. Spatial and memory conditioning are kept
    by default because they are constraints (known values, neighbours), not a style to amplify.
    Scale 1 calls the conditional model alone, so it equals it exactly.
    """

    def __init__(self, denoiser: DenoiserFn, scale: float,
                 drop: tuple[str, ...] = ("style_weights", "sliders")):
        super().__init__()
        if not math.isfinite(scale):
            raise ValueError(f"guidance scale must be finite, got {scale}")
        self.denoiser = denoiser
        self.scale = float(scale)
        self.drop = drop

    def forward(self, x: Tensor, sigma: Tensor | float, cond: Conditioning | None = None) -> Tensor:
        if self.scale == 1 or cond is None:
            return self.denoiser(x, sigma, cond)
        sigma = torch.as_tensor(sigma, dtype=torch.float32, device=x.device).reshape(-1).expand(x.shape[0])
        both = Conditioning.cat([cond, cond.nulled(self.drop)])  # one batched evaluation of 2B
        d_cond, d_uncond = self.denoiser(torch.cat([x, x]), sigma.repeat(2), both).chunk(2)
        return d_uncond + self.scale * (d_cond - d_uncond)


class Inpainting(nn.Module):
    """Replace the denoised estimate by the known values inside the mask.

    known: [B or 1, C, *S]; mask: same shape or broadcastable, 1 = known, 0 = generate, values in
    between blend (a feathered edge). With x0 pinned, the ODE drives the known region to
    known + sigma * (initial noise), i.e. a correctly noised copy of it, and the rest follows.
    Floating-point steps leave it ~1e-6 off at the end: call `finalize` (or `paste_known`) on the
    sample to make the known region exact.

    With few steps the layout of the generated cells is fixed while the known ones are still hidden
    under noise, so they meet at a step (a raised plateau's neighbour keeps the old ground level: a
    wall). ``reach`` > 0 (cells; 2D fields) adds `spread_mismatch` of the estimate's gap to the known
    values to the generated cells at every step, so they lean into the known ones from the start.
    """

    def __init__(self, denoiser: DenoiserFn, known: Tensor, mask: Tensor, reach: float = 0.0):
        super().__init__()
        if mask.min() < 0 or mask.max() > 1:
            raise ValueError(f"mask values must lie in [0, 1], got [{float(mask.min())}, {float(mask.max())}]")
        if reach and (reach < 1 or known.ndim != 4):
            raise ValueError(f"reach must be 0 or >= 1 cell on a 2D field [B, C, H, W], got {reach} on "
                             f"{tuple(known.shape)}")
        self.denoiser = denoiser
        self.known = known.float()
        self.mask = mask.float()
        self.spread = MismatchSpread(self.mask, reach) if reach else None

    def forward(self, x: Tensor, sigma: Tensor, cond: Conditioning | None = None) -> Tensor:
        denoised = self.denoiser(x, sigma, cond)
        if self.spread is not None:
            denoised = denoised + self.spread(self.known - denoised)
        return paste_known(torch.lerp(denoised, self.known, self.mask), self.known, self.mask)

    def finalize(self, x: Tensor) -> Tensor:
        return paste_known(x, self.known, self.mask)


def nonincreasing(y: Tensor) -> Tensor:
    """The least-squares closest sequence that never rises along the last axis (isotonic regression).

    y: [..., L]. Uses the min-max formula f_i = min_{k<=i} max_{j>=i} mean(y_k..y_j) on all O(L^2)
    segment means at once: exact, batched, for the short profiles it is meant for.
    """
    n = y.shape[-1]
    s = torch.nn.functional.pad(y.double().cumsum(-1), (1, 0))  # [..., L + 1]
    k = torch.arange(n, device=y.device)
    count = (k[None, :] - k[:, None] + 1).clamp_min(1)  # [k, j]
    mean = (s[..., None, 1:] - s[..., :-1, None]) / count  # [..., k, j]: mean of y_k..y_j (j >= k)
    inner = mean.flip(-1).cummax(-1).values.flip(-1)  # [..., k, i]: max over j >= i
    inner = torch.where(k[:, None] <= k[None, :], inner, torch.inf)  # only k <= i
    return inner.amin(-2).to(y.dtype)


class MonotoneProjection(nn.Module):
    """Project the denoised estimate so that x0 + trend never rises along the last axis and stays in [low, high].

    trend: [B or 1, C, L], the part of the signal the network does not model (e.g. the chord under a
    detrended river profile); low, high: [B or 1, C, 1 or L] non-increasing bounds on x0 + trend (the
    profile's ends, or per sample the pins around it: low = high at a pin keeps it). Isotonic regression
    then clipping is the exact least-squares projection for constant bounds and a monotone one for
    monotone bounds. A sampler whose last step returns the denoised estimate (dpmpp_2m, heun) then ends
    on a monotone sample.
    """

    def __init__(self, denoiser: DenoiserFn, trend: Tensor, low: Tensor, high: Tensor):
        super().__init__()
        if bool((low > high).any()):
            raise ValueError("MonotoneProjection needs low <= high")
        self.denoiser = denoiser
        self.trend, self.low, self.high = trend.float(), low.float(), high.float()

    def forward(self, x: Tensor, sigma: Tensor, cond: Conditioning | None = None) -> Tensor:
        y = self.denoiser(x, sigma, cond) + self.trend
        return torch.minimum(torch.maximum(nonincreasing(y), self.low), self.high) - self.trend


class SoftGuidance(nn.Module):
    """Pull x0 toward `target` by strength * weight_mask (brushes: raise, flatten, smooth toward a field).

    x0' = x0 + strength * weight_mask * (target - x0); weight_mask in [0, 1], strength in [0, 1].
    Applied at every step, the sample ends near, not on, the target: the model blends it in.
    """

    def __init__(self, denoiser: DenoiserFn, target: Tensor, weight_mask: Tensor, strength: float):
        super().__init__()
        if not 0 <= strength <= 1:
            raise ValueError(f"strength must lie in [0, 1], got {strength}")
        if weight_mask.min() < 0 or weight_mask.max() > 1:
            raise ValueError(f"weight_mask values must lie in [0, 1], got [{float(weight_mask.min())}, "
                             f"{float(weight_mask.max())}]")
        self.denoiser = denoiser
        self.target = target.float()
        self.weight = weight_mask.float() * strength

    def forward(self, x: Tensor, sigma: Tensor, cond: Conditioning | None = None) -> Tensor:
        denoised = self.denoiser(x, sigma, cond)
        return denoised + self.weight * (self.target - denoised)


def sdedit_start(x_init: Tensor, sigmas: Tensor, strength: float,
                 generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """SDEdit (Meng et al. 2022): noise an existing field part way and sample only the tail.

    strength in [0, 1]: the fraction of the schedule's steps that is re-run (0 keeps x_init,
    1 starts from sigmas[0], i.e. ignores x_init in practice). Returns (x_noisy, sigmas_tail), with
    sigmas_tail ending in 0, ready for any sampler.
    """
    if not 0 <= strength <= 1:
        raise ValueError(f"strength must lie in [0, 1], got {strength}")
    if generator is None:
        raise ValueError("sdedit_start needs a seeded torch.Generator (the global RNG is never used)")
    n = len(sigmas) - 1
    k = math.ceil(strength * n)  # steps to run
    tail = sigmas[n - k:]
    noise = torch.randn(x_init.shape, generator=generator, device=x_init.device, dtype=torch.float32)
    return x_init.float() + tail[0] * noise, tail
