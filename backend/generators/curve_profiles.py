"""The curve guides' 1D model: elevation profiles between two pinned ends (and any pinned samples).

The model (``configs/profile_1d.json``, trained by ``train_terrain``) denoises the deviation of a profile
from the chord between its ends (``backend.data.elevation_profiles``), so its ends are 0 by construction and
Inpainting pins them, and any other sample, exactly. Rivers are sampled from their higher end and
kept non-increasing by projecting every denoised estimate (``MonotoneProjection``), then once more in
float64 metres, so their beds never run uphill.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from backend.data.elevation_profiles import KINDS, chord, from_network, profile_conditioning
from backend.diffusion.guidance import Inpainting, MonotoneProjection, nonincreasing
from backend.diffusion.preconditioning import Conditioning
from backend.diffusion.samplers import get_sampler
from backend.diffusion.schedules import karras_sigmas
from backend.models.profile import ProfileModel

STEPS = 16  # dpmpp_2m steps: the profile is 64 numbers, sampling takes milliseconds


def pin_bounds(pins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(B, L) pinned heights (NaN = free, both ends pinned) of descending profiles -> (low, high) (B, L): every
    sample lies between the next pin and the previous one, and a pin between itself and itself."""
    index = np.arange(pins.shape[1])
    previous = np.maximum.accumulate(np.where(np.isnan(pins), -1, index), axis=1)
    following = np.minimum.accumulate(np.where(np.isnan(pins), pins.shape[1], index)[:, ::-1], axis=1)[:, ::-1]
    rows = np.arange(len(pins))[:, None]
    return pins[rows, following], pins[rows, previous]


def monotone_metres(z: np.ndarray, pins: np.ndarray) -> np.ndarray:
    """(B, L) metres -> the closest non-increasing profiles (isotonic regression), clipped between the pins
    around each sample, so every pin (the ends included) is kept exactly."""
    low, high = pin_bounds(pins)
    return np.clip(nonincreasing(torch.from_numpy(z)).numpy(), low, high)


def sample_profiles(model: ProfileModel, kind: str, ends_m: np.ndarray, length_m: np.ndarray, relief_m: np.ndarray,
                    extent_m: np.ndarray, seed: int, pinned_m: np.ndarray | None = None, monotone: bool | None = None,
                    steps: int = STEPS) -> np.ndarray:
    """B profiles (B, L) float64 metres, from ends_m[:, 0] to ends_m[:, 1] exactly; deterministic per seed.

    length_m, relief_m, extent_m: (B,) the line's length, the terrain's relief (max - min) and extent
    (side) in metres: the units the model was trained in. pinned_m: optional (B, L) heights to keep
    (NaN = free). monotone (default: rivers): every profile runs downhill from its higher end.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {list(KINDS)}, got {kind!r}")
    ends = np.asarray(ends_m, np.float64)
    b, n = len(ends), model.length
    monotone = kind == "river" if monotone is None else monotone
    flip = monotone & (ends[:, 0] < ends[:, 1])  # sample downhill, give back in the caller's order
    start, end = np.where(flip, ends[:, 1], ends[:, 0]), np.where(flip, ends[:, 0], ends[:, 1])
    pins = np.full((b, n), np.nan) if pinned_m is None else np.where(flip[:, None], pinned_m[:, ::-1], pinned_m)
    pins[:, 0], pins[:, -1] = start, end
    unit = np.asarray(relief_m, np.float64) * model.meta["deviation_scale"][kind]  # metres per network unit
    line = chord(start, end, n)
    known = np.where(np.isnan(pins), 0.0, (pins - line) / unit[:, None])
    as_tensor = lambda a: torch.from_numpy(np.asarray(a, np.float32)).to(model.device)  # noqa: E731
    cond = Conditioning.cat([profile_conditioning(kind, float(s - e), float(length), float(r), float(x)).map(
        lambda t: t[None]) for s, e, length, r, x in zip(start, end, length_m, relief_m, extent_m)]).map(
        lambda t: t.to(model.device))
    denoiser: Any = model.denoiser
    if monotone:
        low, high = pin_bounds(pins)
        if (high < low).any():
            raise ValueError("pinned heights of a river must descend from its higher end")
        trend = line / unit[:, None]
        denoiser = MonotoneProjection(denoiser, as_tensor(trend)[:, None], as_tensor(low / unit[:, None])[:, None],
                                      as_tensor(high / unit[:, None])[:, None])
    denoiser = Inpainting(denoiser, as_tensor(known)[:, None], as_tensor(~np.isnan(pins))[:, None])
    sigmas = karras_sigmas(steps).to(model.device)
    noise = torch.randn(b, 1, n, generator=torch.Generator().manual_seed(seed)).to(model.device)
    with torch.no_grad():
        x = denoiser.finalize(get_sampler("dpmpp_2m")(denoiser, noise * sigmas[0], sigmas, cond=cond))
    z = np.stack([from_network(row, s, e, u, 1.0) for row, s, e, u in
                  zip(x[:, 0].double().cpu().numpy(), start, end, unit)])
    z = np.where(np.isnan(pins), z, pins)  # exact in float64, not through the float32 network units
    if monotone:
        z = monotone_metres(z, pins)
    return np.where(flip[:, None], z[:, ::-1], z)
