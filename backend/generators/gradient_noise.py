"""Vectorised gradient (Perlin) noise in torch, so the procedural generator runs on the job's device."""

from __future__ import annotations

import math

import torch

TABLE = 256  # lattice period of one noise table


class GradientNoise:
    """One seeded 2D gradient-noise function: a permutation table plus unit gradients."""

    def __init__(self, generator: torch.Generator, device: torch.device):
        perm = torch.randperm(TABLE, generator=generator)
        self.perm = torch.cat([perm, perm]).to(device)  # doubled so perm[perm[x] + y] never wraps
        angles = torch.rand(TABLE, generator=generator) * (2 * math.pi)
        self.gx = torch.cos(angles).to(device)
        self.gy = torch.sin(angles).to(device)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Noise in about [-1, 1] at lattice coordinates x, y: [H, W] float32."""
        x0, y0 = torch.floor(x), torch.floor(y)
        fx, fy = x - x0, y - y0
        xi, yi = x0.long() & (TABLE - 1), y0.long() & (TABLE - 1)
        n00 = self._dot(xi, yi, fx, fy)
        n10 = self._dot(xi + 1, yi, fx - 1, fy)
        n01 = self._dot(xi, yi + 1, fx, fy - 1)
        n11 = self._dot(xi + 1, yi + 1, fx - 1, fy - 1)
        u, v = _fade(fx), _fade(fy)
        return torch.lerp(torch.lerp(n00, n10, u), torch.lerp(n01, n11, u), v) * math.sqrt(2.0)

    def _dot(self, xi: torch.Tensor, yi: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor) -> torch.Tensor:
        h = self.perm[self.perm[xi] + yi]
        return self.gx[h] * dx + self.gy[h] * dy


def _fade(t: torch.Tensor) -> torch.Tensor:
    """Perlin's quintic: C2-continuous, so slopes (and hillshading) have no grid creases."""
    return t * t * t * (t * (t * 6 - 15) + 10)


def fbm(noises: list[GradientNoise], x: torch.Tensor, y: torch.Tensor, gain: float = 0.5) -> torch.Tensor:
    """Plain fractal sum of ``len(noises)`` octaves (lacunarity 2), normalised to about [-1, 1]."""
    total = torch.zeros_like(x)
    amplitude, norm = 1.0, 0.0
    for octave, noise in enumerate(noises):
        total += amplitude * noise(x * 2**octave, y * 2**octave)
        norm += amplitude
        amplitude *= gain
    return total / norm
