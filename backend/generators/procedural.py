"""The procedural baseline: domain-warped fBm / ridged multifractal noise with named styles.

Each style is a small parameter set (its spec's ``ProceduralLook``); a style mix blends them by weight. Octaves
are summed coarse to fine, and every octave is one step with a preview, so the artist sees the
big shapes first. Then the noise is shaped into metres (valleys, terraces, islands, cones) and
thermally eroded. Runs in torch on the job's device.
"""

from __future__ import annotations

import math
from dataclasses import fields, replace

import torch
import torch.nn.functional as F

from backend.simulation.erosion import ThermalParams, thermal_erosion
from backend.simulation.style_specs import STYLES as STYLE_SPECS, ProceduralLook
from backend.terrain import Heightfield

from .base import GenerateRequest, Interrupt, StepCallback
from .gradient_noise import GradientNoise, fbm

MAX_OCTAVES = 12  # the finest octave is about two cells wide
PREVIEW_MAX = 256  # previews are resampled to at most this many cells per side
EROSION_ITERATIONS_PER_STEP = 10
# talus failure (``simulation.erosion``): slopes above a rise over run of 0.8 shed a quarter of their excess per pass
TALUS = ThermalParams(talus_deg=math.degrees(math.atan(0.8)), rate=0.24)


STYLES: dict[str, ProceduralLook] = {name: spec.procedural for name, spec in STYLE_SPECS.items()}


def blend_styles(weights: dict[str, float]) -> ProceduralLook:
    """Weighted average of the styles' parameter sets (weights sum to 1)."""
    unknown = sorted(set(weights) - set(STYLES))
    if unknown:
        raise ValueError(f"unknown style(s) {unknown}; available: {sorted(STYLES)}")
    return ProceduralLook(**{f.name: sum(w * getattr(STYLES[s], f.name) for s, w in weights.items())
                             for f in fields(ProceduralLook)})


class ProceduralGenerator:
    """Seeded fractal terrain; same request and device give the same heights."""

    name = "procedural"
    styles = tuple(STYLES)

    def __init__(self, device: str = "cpu"):
        self.device = torch.device(device)

    def generate(self, request: GenerateRequest, on_step: StepCallback,
                 interrupt: Interrupt | None = None) -> Heightfield:
        """Every step is short (one octave or a few erosion iterations): ``on_step`` is interrupt enough."""
        style = blend_styles(request.style_weights)
        n = request.resolution
        cycles = max(0.5, request.size_m / style.wavelength_m)  # largest features across the tile
        octaves = min(MAX_OCTAVES, max(1, math.ceil(math.log2(n / (2.0 * cycles)))))
        erosion_iterations = round(request.slider("erosion_strength", 0.3) * 40)
        erosion_steps = math.ceil(erosion_iterations / EROSION_ITERATIONS_PER_STEP)
        total = 1 + octaves + erosion_steps
        rng = torch.Generator().manual_seed(request.seed)

        with torch.no_grad():
            x, y = self._warped_coords(n, style, rng)  # step 1
            on_step(1, total, None)
            gain = min(0.85, style.gain * (0.7 + 0.6 * request.slider("roughness", 0.5)))
            relief = request.height_m * (0.2 + 0.8 * request.slider("elevation_range", 1.0))
            sea = request.slider("sea_level", style.sea_level)
            acc = torch.zeros_like(x)
            weight = torch.ones_like(x)  # ridged multifractal: fine detail follows coarse crests
            amplitude = 1.0
            erosion = request.slider("erosion_strength", 0.3)
            for octave in range(octaves):
                freq = cycles * 2**octave
                signal = GradientNoise(rng, self.device)(x * freq * style.stretch, y * freq)
                ridged = (1.0 - signal.abs()) ** 2
                value = torch.lerp(signal, (2.0 * ridged - 1.0) * weight, style.ridge)
                if octave > 0:  # hybrid multifractal: low ground gets less fine detail (eroded look)
                    value = value * (1.0 - erosion * 0.8 * (1.0 - _normalise(acc)))
                acc += amplitude * value
                weight = (ridged * 1.5).clamp(0.0, 1.0)
                amplitude *= gain
                on_step(2 + octave, total, _preview(_to_metres(acc, style, relief, sea)))
            heights = _to_metres(acc, style, relief, sea)
            cell_size = request.cell_size
            for step in range(erosion_steps):
                iterations = min(EROSION_ITERATIONS_PER_STEP, erosion_iterations - step * EROSION_ITERATIONS_PER_STEP)
                heights = thermal_erosion(heights[None], cell_size, replace(TALUS, iterations=iterations))[0][0]
                on_step(2 + octaves + step, total, _preview(heights))
            # Erosion lowers peaks a little: restore the exact requested relief, keeping sea level at 0 m.
            heights = _rescale(heights, relief, sea)
        dominant = max(request.style_weights, key=request.style_weights.__getitem__)
        return Heightfield(heights.cpu().numpy().astype("float32"), cell_size, style=dominant)

    def _warped_coords(self, n: int, style: ProceduralLook, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Tile coordinates in [0, 1] (x east, y south), displaced by low-frequency noise."""
        axis = torch.linspace(0.0, 1.0, n, device=self.device)
        y, x = torch.meshgrid(axis, axis, indexing="ij")
        warp_noises = [GradientNoise(rng, self.device) for _ in range(6)]
        offset = 2.0 + 7.3 * torch.rand((), generator=rng).item()  # a seed-dependent window of the lattice
        dx = fbm(warp_noises[:3], x * 2 + offset, y * 2)
        dy = fbm(warp_noises[3:], x * 2, y * 2 + offset)
        return x + style.warp * dx + offset, y + style.warp * dy + offset


def _normalise(field: torch.Tensor) -> torch.Tensor:
    low, high = field.min(), field.max()
    return (field - low) / (high - low).clamp_min(1e-12)


def _to_metres(acc: torch.Tensor, style: ProceduralLook, relief: float, sea: float) -> torch.Tensor:
    """Shape summed noise into heights: valleys, cone, island falloff, terraces; sea level at 0 m."""
    h = _normalise(acc) ** style.exponent
    n = acc.shape[0]
    axis = torch.linspace(-1.0, 1.0, n, device=acc.device)
    cy, cx = torch.meshgrid(axis, axis, indexing="ij")
    r = torch.sqrt(cx * cx + cy * cy)
    if style.cone > 0:
        cone = (1.0 - r / 0.7).clamp(0.0, 1.0) ** 1.5
        crater = 0.5 * torch.exp(-((r / 0.09) ** 2))
        h = torch.lerp(h, 0.35 * h + cone - crater * cone, style.cone)
    if style.island > 0:
        falloff = 1.0 - _smoothstep(0.45, 1.0, r)
        h = torch.lerp(h, h * falloff, style.island)
    if style.terrace > 0:
        k = _normalise(h) * 6.0
        step = torch.floor(k)
        h = torch.lerp(_normalise(h), (step + _smoothstep(0.75, 1.0, k - step)) / 6.0, style.terrace)
    return _rescale(h, relief, sea)


def _rescale(h: torch.Tensor, relief: float, sea: float) -> torch.Tensor:
    """Map to exactly ``relief`` metres from min to max, with ``sea`` of the range below 0 m."""
    return (_normalise(h) - sea) * relief


def _smoothstep(edge0: float, edge1: float, t: torch.Tensor) -> torch.Tensor:
    s = ((t - edge0) / (edge1 - edge0)).clamp(0.0, 1.0)
    return s * s * (3.0 - 2.0 * s)


def _preview(heights: torch.Tensor) -> "torch.Tensor":
    """A small copy for streaming (bilinear, corners kept, so it spans the same extent)."""
    n = heights.shape[0]
    if n > PREVIEW_MAX:
        heights = F.interpolate(heights[None, None], size=(PREVIEW_MAX, PREVIEW_MAX), mode="bilinear",
                                align_corners=True)[0, 0]
    return heights.cpu().numpy().astype("float32")
