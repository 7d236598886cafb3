"""Terrain realism metrics shared by every report: per-terrain features and set distances.

Scale awareness (so a 90 m DEM and a 30 m simulation compare fairly):

* slope: gradients use the cell size, so they are true m/m; the family also holds shape-only
  statistics (coefficient of variation, p90/median) that do not depend on relief or resolution.
* curvature: the Laplacian is made dimensionless as ``lap * cell_size / mean|grad|`` (curvature
  per cell relative to the typical slope); only its distribution shape (skewness, tail, convex
  fraction) is used.
* spectrum: exponent beta of the radially averaged power spectrum P(k) ~ k^-beta, fitted in
  physical wavenumber between wavelengths of 4 cells and half the map (scale-free exponent).
* pits / drainage: counts per cell and exponents over areas measured in cells, so they are
  independent of the metric cell size (they do depend on resolution relative to landforms,
  which no single-scale metric can remove).
* hypsometry: on heights normalised to [0, 1].

A set distance is, per feature, the absolute difference of the set means divided by a fixed
feature scale (``FEATURE_SCALES``: a typical spread of that feature across natural terrain), then
averaged within each family; the total is the mean over families.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from backend.grids import gradient_magnitude, slope_angle
from backend.simulation.flow import accumulate, d8_receivers, fill_depressions, path_length_to_outlet
from backend.terrain import Heightfield

FAMILIES: tuple[str, ...] = ("slope", "curvature", "spectrum", "pits", "drainage", "hypsometry")

# Typical spread of each feature across natural terrains: the unit of distance.
FEATURE_SCALES: dict[str, dict[str, float]] = {
    "slope": {"mean_deg": 10.0, "cv": 0.3, "p90_over_median": 1.0},
    "curvature": {"skewness": 1.0, "log_kurtosis": 0.5, "convex_fraction": 0.1},
    "spectrum": {"beta": 0.5},
    "pits": {"log_pit_density": 1.0, "depression_fraction": 0.1},
    "drainage": {"area_exponent": 0.1, "hack_exponent": 0.1, "largest_basin_fraction": 0.2},
    "hypsometry": {"integral": 0.1, "skewness": 0.5},
}


def _skew(x: np.ndarray) -> float:
    s = x.std()
    return float(((x - x.mean()) ** 3).mean() / s ** 3) if s > 0 else 0.0


def slope_features(heights: np.ndarray, cell_size: float) -> dict[str, float]:
    """Slope distribution: mean angle (deg) and resolution-free shape statistics."""
    g = gradient_magnitude(heights, cell_size)[1:-1, 1:-1]
    med = float(np.median(g))
    return {
        "mean_deg": float(slope_angle(g).mean()),
        "cv": float(g.std() / max(g.mean(), 1e-12)),
        "p90_over_median": float(np.percentile(g, 90) / max(med, 1e-12)),
    }


def curvature_features(heights: np.ndarray, cell_size: float) -> dict[str, float]:
    """Distribution shape of the dimensionless Laplacian (negative = convex ridge)."""
    z = heights.astype(np.float64)
    lap = (z[:-2, 1:-1] + z[2:, 1:-1] + z[1:-1, :-2] + z[1:-1, 2:] - 4 * z[1:-1, 1:-1]) / cell_size
    k = lap / max(gradient_magnitude(heights, cell_size)[1:-1, 1:-1].mean(), 1e-12)
    s = k.std()
    kurt = float(((k - k.mean()) ** 4).mean() / s ** 4) if s > 0 else 3.0
    return {"skewness": _skew(k), "log_kurtosis": math.log10(max(kurt, 1e-6)),
            "convex_fraction": float((k < 0).mean())}


def spectral_slope(heights: np.ndarray, cell_size: float) -> float:
    """beta in P(k) ~ k^-beta of the radially averaged 2D power spectrum (plane removed, Hann)."""
    z = heights.astype(np.float64)
    h, w = z.shape
    yy, xx = np.mgrid[0:h, 0:w]
    a = np.c_[yy.ravel(), xx.ravel(), np.ones(h * w)]
    z = z - (a @ np.linalg.lstsq(a, z.ravel(), rcond=None)[0]).reshape(h, w)
    z = z * np.outer(np.hanning(h), np.hanning(w))
    power = np.abs(np.fft.fft2(z)) ** 2
    k = np.hypot(*np.meshgrid(np.fft.fftfreq(h, cell_size), np.fft.fftfreq(w, cell_size), indexing="ij"))
    kmin, kmax = 2.0 / (min(h, w) * cell_size), 1.0 / (4.0 * cell_size)
    edges = np.geomspace(kmin, kmax, 16)
    idx = np.digitize(k.ravel(), edges)
    pk = power.ravel()
    centres, means = [], []
    for i in range(1, len(edges)):
        sel = idx == i
        if sel.any():
            centres.append(math.sqrt(edges[i - 1] * edges[i]))
            means.append(pk[sel].mean())
    if len(centres) < 3:
        raise ValueError(f"map {heights.shape} too small for a spectral fit")
    slope = np.polyfit(np.log(centres), np.log(np.maximum(means, 1e-300)), 1)[0]
    return float(-slope)


def pit_density(heights: np.ndarray) -> float:
    """Share of interior cells strictly below all 8 neighbours (closed pits: real ground ~0.6 %)."""
    z = heights.astype(np.float64)
    c = z[1:-1, 1:-1]
    pit = np.ones_like(c, dtype=bool)
    h, w = z.shape
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            if dr or dc:
                pit &= c < z[1 + dr:h - 1 + dr, 1 + dc:w - 1 + dc]
    return float(pit.mean())


def pit_features(heights: np.ndarray, filled: np.ndarray) -> dict[str, float]:
    """Density of interior local minima (``pit_density``) as log10, and the fraction of cells inside
    depressions deeper than 0.1 % of the relief."""
    relief = max(float(np.ptp(heights)), 1e-9)
    return {"log_pit_density": math.log10(pit_density(heights) + 1e-5),
            "depression_fraction": float(((filled - heights.astype(np.float64)) > 1e-3 * relief).mean())}


def _fit_exponent(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 3:
        return float("nan")
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def drainage_features(filled: np.ndarray, cell_size: float) -> dict[str, float]:
    """Flow statistics on the depression-filled surface (areas in cells).

    area_exponent: tau in P(A >= a) ~ a^-tau for 10 cells <= a <= N/20 (rivers: ~0.4-0.5);
    hack_exponent: h in L ~ A^h for the longest upstream flow length L (rivers: ~0.5-0.6);
    largest_basin_fraction: area of the largest outlet's basin over the map.
    """
    zf = torch.from_numpy(filled)[None]
    receiver, _, dist = d8_receivers(zf, cell_size)
    area = accumulate(receiver, torch.ones_like(zf))[0].numpy()
    down = path_length_to_outlet(receiver, dist)
    longest = (accumulate(receiver, down, reduce="amax") - down)[0].numpy() / cell_size + 1.0
    n = area.size
    a_sorted = np.sort(area.ravel())
    grid = np.geomspace(10, max(n / 20, 20), 12)
    exceed = 1.0 - np.searchsorted(a_sorted, grid, side="left") / n
    ok = exceed > 0
    tau = -_fit_exponent(grid[ok], exceed[ok])
    sel = (area >= 10) & (area <= n / 5)
    hack = _fit_exponent(area[sel], longest[sel])
    roots = receiver[0].numpy().ravel() == np.arange(n)
    return {"area_exponent": tau, "hack_exponent": hack,
            "largest_basin_fraction": float(area.ravel()[roots].max() / n)}


def hypsometry_features(heights: np.ndarray) -> dict[str, float]:
    """Hypsometric integral (mean - min) / (max - min) and the skewness of elevations."""
    z = heights.astype(np.float64)
    rng = max(float(np.ptp(z)), 1e-9)
    return {"integral": float((z.mean() - z.min()) / rng), "skewness": _skew(z)}


def grid_alignment(heights: np.ndarray, cell_size: float) -> float:
    """How much more the slopes face the grid's eight neighbours than any other set of eight directions.

    With H(k) = |sum |g| e^(i k theta)| / sum |g| the slope-weighted k-fold harmonic of the aspect theta over the
    interior, this is H(8) - (H(7) + H(9)) / 2: a map whose slopes mostly face one way (a tilted plane) has all
    three near 1, ground with no preferred direction all three near 0, and only facets that face the grid's
    axes and diagonals raise H(8) alone. Steepest-neighbour (D8) flow cuts such facets (the simulated corpus
    v2 0.07-0.33); real DEMs measure 0.00 +- 0.01."""
    gy, gx = np.gradient(heights.astype(np.float64), cell_size)
    gx, gy = gx[2:-2, 2:-2], gy[2:-2, 2:-2]
    weight = np.hypot(gx, gy)
    total = weight.sum()
    if total <= 0:
        return 0.0
    aspect = np.arctan2(gy, gx)
    h7, h8, h9 = (float(np.abs((weight * np.exp(1j * k * aspect)).sum()) / total) for k in (7, 8, 9))
    return h8 - (h7 + h9) / 2


def terrain_features(hf: Heightfield) -> dict[str, dict[str, float]]:
    """All metric families of one terrain: {family: {feature: value}}."""
    z = hf.heights.astype(np.float64)
    filled = fill_depressions(torch.from_numpy(z)).numpy()
    return {
        "slope": slope_features(z, hf.cell_size),
        "curvature": curvature_features(z, hf.cell_size),
        "spectrum": {"beta": spectral_slope(z, hf.cell_size)},
        "pits": pit_features(z, filled),
        "drainage": drainage_features(filled, hf.cell_size),
        "hypsometry": hypsometry_features(z),
    }


def set_means(features: Sequence[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Mean of every feature over a set of terrains (NaNs ignored)."""
    if not features:
        raise ValueError("empty feature set")
    return {fam: {k: float(np.nanmean([f[fam][k] for f in features])) for k in FEATURE_SCALES[fam]}
            for fam in FAMILIES}


def set_distance(a: Sequence[dict[str, dict[str, float]]],
                 b: Sequence[dict[str, dict[str, float]]]) -> dict[str, float]:
    """Distance between two sets of terrains: per family and "total" (see module docstring)."""
    ma, mb = set_means(a), set_means(b)
    out = {fam: float(np.mean([abs(ma[fam][k] - mb[fam][k]) / s for k, s in FEATURE_SCALES[fam].items()]))
           for fam in FAMILIES}
    out["total"] = float(np.mean([out[f] for f in FAMILIES]))
    return out


def hillshade(heights: np.ndarray, cell_size: float, azimuth_deg: float = 315.0,
              altitude_deg: float = 45.0) -> np.ndarray:
    """(H, W) heights (m) -> (H, W) float in [0, 1]: Lambertian shading, sun from the north-west.

    Uses true metric slopes (no vertical exaggeration), so shading is comparable across scales.
    """
    gy, gx = np.gradient(heights.astype(np.float64), cell_size)  # rows grow southwards
    az, alt = math.radians(azimuth_deg), math.radians(altitude_deg)
    # Surface normal n = (-dz/dx_east, -dz/dy_north, 1); north = -rows.
    nx, ny = -gx, gy
    sun = (math.sin(az) * math.cos(alt), math.cos(az) * math.cos(alt), math.sin(alt))
    shade = (nx * sun[0] + ny * sun[1] + sun[2]) / np.sqrt(nx * nx + ny * ny + 1.0)
    return np.clip(shade, 0.0, 1.0)


def contact_sheet(terrains: Sequence[Heightfield], path: str | Path, titles: Sequence[str] | None = None,
                  cols: int = 4) -> Path:
    """Write a PNG grid of hillshaded, elevation-tinted terrains; returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not terrains:
        raise ValueError("contact_sheet needs at least one terrain")
    titles = list(titles) if titles is not None else [t.style for t in terrains]
    if len(titles) != len(terrains):
        raise ValueError(f"{len(titles)} titles for {len(terrains)} terrains")
    cols = min(cols, len(terrains))
    rows = math.ceil(len(terrains) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.4 * rows), squeeze=False)
    cmap = plt.get_cmap("gist_earth")
    for ax in axes.ravel():
        ax.axis("off")
    for ax, hf, title in zip(axes.ravel(), terrains, titles):
        z = hf.heights.astype(np.float64)
        tint = cmap(0.15 + 0.8 * (z - z.min()) / max(float(np.ptp(z)), 1e-9))[..., :3]
        shade = hillshade(z, hf.cell_size)[..., None]
        ax.imshow(np.clip(tint * (0.35 + 0.75 * shade), 0, 1), interpolation="bilinear")
        ax.set_title(f"{title}\n{hf.shape[1]}x{hf.shape[0]} @ {hf.cell_size:g} m, relief {np.ptp(z):.0f} m",
                     fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
