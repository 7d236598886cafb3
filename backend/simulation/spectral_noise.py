"""Minimal spectral fBm noise: the "no erosion" baseline and the seed of every simulated map."""

from __future__ import annotations

import numpy as np


def fbm(size: int | tuple[int, int], rng: np.random.Generator, beta: float = 2.0,
        min_wavelength: float = 2.0) -> np.ndarray:
    """Fractional Brownian surface with power spectrum P(k) ~ k^-(beta + 1), scaled to [0, 1].

    Returns (H, W) float64. Radially averaged, the 2D spectrum P(|k|) ~ |k|^-(beta+1) integrates
    to a 1D profile spectrum ~ k^-beta (beta = 2 is Brownian). ``min_wavelength`` (cells) cuts the
    highest frequencies. Synthesised by filtering white noise in Fourier space (periodic, fast).
    """
    h, w = (size, size) if isinstance(size, int) else size
    if h < 2 or w < 2:
        raise ValueError(f"fbm size must be at least 2x2, got {(h, w)}")
    ky = np.fft.fftfreq(h)[:, None]
    kx = np.fft.rfftfreq(w)[None, :]
    k = np.sqrt(kx * kx + ky * ky)
    amp = np.zeros_like(k)
    ok = (k > 0) & (k <= 1.0 / min_wavelength)
    amp[ok] = k[ok] ** (-(beta + 1.0) / 2.0)
    spec = amp * (rng.standard_normal(k.shape) + 1j * rng.standard_normal(k.shape))
    z = np.fft.irfft2(spec, s=(h, w))
    z -= z.min()
    return z / max(float(z.max()), 1e-12)
