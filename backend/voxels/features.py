"""Simulated caves, overhangs and arches in a block of voxels under a terrain: the voxel corpus's ground truth.

A region is a block of whole chunks in world coordinates; every feature is drawn in the region's cells from
one seeded generator, so the chunks cut out of it continue each other across their borders (what the model
learns outpainting from). Features, each counted by the style's rates times the sliders:

* worm tunnels: smooth random walks carved as chains of spheres;
* caverns: noisy flattened ellipsoids, some with a pool of water (or, rarely and deep, lava) on the floor;
* aquifers: lens-shaped water pockets sealed in rock;
* karst: flat passages meandering along the strata boundaries;
* overhangs and undercut cliffs: the ground above a pivot height leans out downslope inside a blob;
* arches: a half ring of rock standing on the ground.

Then the layered materials (``materials.compose``), ore veins, and a clean-up that removes what the
plausibility energy calls wrong (floating rock, thin unsupported slivers, water that would run out, lava
touching water), so the corpus shows the model only plausible chunks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from . import energy as en
from .channels import terrain_outside_features
from .materials import compose
from .chunk import STRATA_M

SLIDER_NAMES = ("cave_density", "overhang")


@dataclass(frozen=True)
class FeatureRates:
    """Expected features per 64³ cells at slider value 1 (caves) or per 64² columns (overhangs, arches)."""

    worms: float = 4.0
    caverns: float = 1.0
    aquifers: float = 1.0
    karst: float = 1.0
    overhangs: float = 1.5
    arches: float = 0.5
    lava: float = 0.05  # chance a cavern pool is lava (deep caverns only)
    ore: float = 0.03  # fraction of rock cells in ore veins
    cover: str = "grass"


STYLE_FEATURES: dict[str, FeatureRates] = {
    "alpine": FeatureRates(worms=3.0, caverns=1.0, karst=0.5, overhangs=2.0, arches=0.3, cover="snow"),
    "rolling_hills": FeatureRates(worms=4.0, caverns=0.8, aquifers=1.5, overhangs=0.8, arches=0.2),
    "desert_dunes": FeatureRates(worms=1.5, caverns=0.4, aquifers=0.5, karst=0.3, overhangs=0.5, arches=0.6,
                                 cover="sand"),
    "canyon_mesa": FeatureRates(worms=2.0, caverns=1.0, karst=2.0, overhangs=2.5, arches=1.2, cover="gravel"),
    "archipelago": FeatureRates(worms=3.0, caverns=1.2, aquifers=2.0, overhangs=2.0, arches=0.8, cover="sand"),
    "volcanic": FeatureRates(worms=5.0, caverns=1.5, aquifers=0.3, karst=0.2, overhangs=1.0, arches=0.3,
                             lava=0.6, cover="gravel"),
    "glacial_valleys": FeatureRates(worms=2.0, caverns=1.0, aquifers=1.0, karst=0.8, overhangs=1.8, arches=0.4,
                                    cover="snow"),
}


@dataclass
class Region:
    """A block of cells in world metres: z (Z,), y (Y,), x (X,) cell centres and the terrain above them."""

    z: np.ndarray
    y: np.ndarray
    x: np.ndarray
    surface: np.ndarray  # (Y, X) terrain heights at the cell centres, metres
    voxel_size: float

    @property
    def shape(self) -> tuple[int, int, int]:
        return len(self.z), len(self.y), len(self.x)

    def terrain_depth(self) -> np.ndarray:
        """(Z, Y, X) metres below the terrain: the featureless density."""
        return (self.surface[None] - self.z[:, None, None]).astype(np.float32)


def _count(rng: np.random.Generator, rate: float, scale: float) -> int:
    return int(rng.poisson(max(rate * scale, 0.0)))


def _underground_point(rng: np.random.Generator, region: Region, min_depth_cells: float) -> np.ndarray | None:
    """A random (z, y, x) cell position at least ``min_depth_cells`` below the terrain, or None."""
    depth = region.terrain_depth() / region.voxel_size
    candidates = np.argwhere(depth > min_depth_cells)
    if len(candidates) == 0:
        return None
    return candidates[rng.integers(len(candidates))] + rng.uniform(-0.5, 0.5, 3)


def carve_spheres(field: np.ndarray, centres: np.ndarray, radii: np.ndarray, squash_z: float = 1.0) -> None:
    """field = min(field, distance to the nearest sphere's surface) in cells; z distances scaled by squash_z."""
    shape = np.array(field.shape)
    for c, r in zip(centres, radii):
        reach = np.array([r / squash_z, r, r]) + 1
        lo = np.maximum(np.floor(c - reach).astype(int), 0)
        hi = np.minimum(np.ceil(c + reach).astype(int) + 1, shape)
        if (hi <= lo).any():
            continue
        zz, yy, xx = np.ogrid[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        d = np.sqrt(((zz - c[0]) * squash_z) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2) - r
        box = field[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        np.minimum(box, d, out=box)


def _walk(rng: np.random.Generator, start: np.ndarray, steps: int, flat: bool) -> np.ndarray:
    """(steps, 3) points of a smooth random walk, one cell apart; ``flat`` keeps z fixed."""
    heading = rng.uniform(0, 2 * np.pi)
    pitch = 0.0 if flat else rng.normal(0, 0.25)
    points = [start]
    for _ in range(steps - 1):
        heading += rng.normal(0, 0.3)
        pitch = 0.0 if flat else float(np.clip(pitch * 0.9 + rng.normal(0, 0.12), -0.6, 0.6))
        step = np.array([np.sin(pitch), np.cos(pitch) * np.sin(heading), np.cos(pitch) * np.cos(heading)])
        points.append(points[-1] + step)
    return np.array(points)


def carve_tunnels(rng: np.random.Generator, region: Region, rates: FeatureRates, cave_density: float) -> np.ndarray:
    """(Z, Y, X) distance (cells) to the nearest worm tunnel or karst passage wall; < 0 inside."""
    field = np.full(region.shape, np.inf, np.float32)
    scale = cave_density * np.prod(region.shape) / 64**3
    for _ in range(_count(rng, rates.worms, scale)):
        start = _underground_point(rng, region, 3.0)
        if start is not None:
            points = _walk(rng, start, int(rng.integers(30, 120)), flat=False)
            radii = np.clip(rng.uniform(1.2, 2.6) + np.cumsum(rng.normal(0, 0.08, len(points))), 1.0, 3.5)
            carve_spheres(field, points, radii)
    for _ in range(_count(rng, rates.karst, scale)):
        start = _underground_point(rng, region, 4.0)
        if start is None:
            continue
        boundary = (np.floor(region.z[0] / STRATA_M) + rng.integers(1, 1 + len(region.z) * region.voxel_size
                                                                     // STRATA_M)) * STRATA_M
        start[0] = (boundary - region.z[0]) / region.voxel_size  # along a strata boundary
        points = _walk(rng, start, int(rng.integers(40, 140)), flat=True)
        carve_spheres(field, points, np.full(len(points), rng.uniform(2.0, 3.2)), squash_z=2.0)
    return field


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], cells: float) -> np.ndarray:
    """Unit-std noise smooth over about ``cells`` cells."""
    noise = ndimage.gaussian_filter(rng.normal(size=shape), cells, mode="wrap")
    return (noise / (noise.std() + 1e-9)).astype(np.float32)


def carve_caverns(rng: np.random.Generator, region: Region, rates: FeatureRates, cave_density: float,
                  noise: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Caverns and aquifers: (distance field in cells, < 0 open; water cells; lava cells)."""
    field = np.full(region.shape, np.inf, np.float32)
    water = np.zeros(region.shape, bool)
    lava = np.zeros(region.shape, bool)
    zz, yy, xx = np.indices(region.shape, dtype=np.float32)
    scale = cave_density * np.prod(region.shape) / 64**3
    for kind, rate in (("cavern", rates.caverns), ("aquifer", rates.aquifers)):
        for _ in range(_count(rng, rate, scale)):
            centre = _underground_point(rng, region, 10.0 if kind == "cavern" else 8.0)
            if centre is None:
                continue
            radii = (rng.uniform(3, 6, 1).tolist() + rng.uniform(7, 14, 2).tolist() if kind == "cavern"
                     else [rng.uniform(1.5, 2.5)] + rng.uniform(5, 9, 2).tolist())
            q = np.sqrt(((zz - centre[0]) / radii[0]) ** 2 + ((yy - centre[1]) / radii[1]) ** 2
                        + ((xx - centre[2]) / radii[2]) ** 2)
            d = (q - 1) * min(radii) + 1.2 * noise
            floor = centre[0] - 0.6 * radii[0]
            d = np.maximum(d, floor - zz)  # flat floors
            inside = d < 0
            if kind == "aquifer":
                water |= inside
            elif rng.random() < 0.5:
                pool = inside & (zz < floor + rng.uniform(1.5, 3.0))
                deep = region.terrain_depth()[tuple(np.round(centre).astype(int))] > 40.0
                (lava if deep and rng.random() < rates.lava else water)[pool] = True
            np.minimum(field, d, out=field)
    return field, water, lava


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3 - 2 * t)


def lean_overhangs(rng: np.random.Generator, region: Region, rates: FeatureRates, amount: float) -> np.ndarray:
    """(Z, Y, X) density (metres) of the terrain whose upper part leans out downslope inside random blobs.

    Where a blob is, the ground above a pivot height is the terrain shifted by up to 10 cells downslope,
    so steep slopes grow overhangs and undercut cliffs; outside the blobs it is the terrain exactly.
    """
    nz, ny, nx = region.shape
    vs = region.voxel_size
    smooth = ndimage.gaussian_filter(region.surface.astype(np.float64), 3.0, mode="nearest")
    gy, gx = np.gradient(smooth, vs)
    slope = np.hypot(gy, gx)
    down_y, down_x = -gy / (slope + 1e-9), -gx / (slope + 1e-9)  # unit downslope, in (row, col) cells
    down_y = -down_y  # rows grow south while y grows north
    shift = np.zeros(region.shape, np.float32)
    weights = (slope / slope.sum()).ravel() if slope.sum() > 0 else None
    for _ in range(_count(rng, rates.overhangs, amount * ny * nx / 64**2)):
        row, col = np.unravel_index(rng.choice(ny * nx, p=weights), (ny, nx))
        sigma = rng.uniform(5, 12)
        yy, xx = np.ogrid[:ny, :nx]
        blob = np.exp(-((yy - row) ** 2 + (xx - col) ** 2) / (2 * sigma**2))
        pivot = region.surface[row, col] - rng.uniform(2, 10) * vs
        lean = _smoothstep((region.z - pivot) / (rng.uniform(2, 4) * vs))
        shift += rng.uniform(4, 10) * blob[None] * lean[:, None, None]
    if not shift.any():
        return region.terrain_depth()
    zz, yy, xx = np.indices(region.shape, dtype=np.float32)
    rows = yy - shift * down_y[None]
    cols = xx - shift * down_x[None]
    moved = ndimage.map_coordinates(region.surface.astype(np.float32), [rows.ravel(), cols.ravel()], order=1,
                                    mode="nearest").reshape(region.shape)
    return (moved - region.z[:, None, None]).astype(np.float32)


def add_arches(rng: np.random.Generator, region: Region, rates: FeatureRates, amount: float,
               density: np.ndarray) -> np.ndarray:
    """The density with half-buried rings of rock added (their inner disc opened): arches and holes in fins."""
    nz, ny, nx = region.shape
    vs = region.voxel_size
    zz, yy, xx = np.indices(region.shape, dtype=np.float32)
    for _ in range(_count(rng, rates.arches, amount * ny * nx / 64**2)):
        row, col = rng.integers(4, ny - 4), rng.integers(4, nx - 4)
        ring, tube = rng.uniform(4, 9), rng.uniform(1.8, 2.6)
        zc = (region.surface[row, col] - region.z[0]) / vs - 0.3 * ring
        phi = rng.uniform(0, np.pi)
        along = (yy - row) * np.cos(phi) + (xx - col) * np.sin(phi)
        across = -(yy - row) * np.sin(phi) + (xx - col) * np.cos(phi)
        rho = np.hypot(along, zz - zc)
        rock = (tube - np.hypot(rho - ring, across)) * vs
        hole = np.maximum(rho - (ring - tube), np.abs(across) - tube - 1) * vs
        density = np.minimum(np.maximum(density, rock), np.where(zz > zc, hole, np.inf)).astype(np.float32)
    return density


def ore_veins(rng: np.random.Generator, shape: tuple[int, int, int], fraction: float) -> np.ndarray:
    """(Z, Y, X) bool: about ``fraction`` of the cells, in blobs a few cells across."""
    noise = _smooth_noise(rng, shape, 1.5)
    return noise > np.quantile(noise, 1 - fraction)


def clean(region: Region, density: np.ndarray, water: np.ndarray, lava: np.ndarray,
          weights: en.EnergyWeights = en.EnergyWeights(), rounds: int = 8) -> tuple[np.ndarray, ...]:
    """Remove what the plausibility energy flags until nothing is left (or ``rounds`` passes): floating rock
    and thin slivers become air, water that would run out drains, lava touching water cools to rock."""
    density, water, lava = density.copy(), water & (density <= 0), lava & (density <= 0)
    open_m, solid_m = -0.5 * region.voxel_size, 0.5 * region.voxel_size
    for _ in range(rounds):
        classes = np.where(density > 0, en.SOLID, en.AIR).astype(np.uint8)
        classes[water] = en.WATER
        classes[lava] = en.LAVA
        found = en.violations(classes, weights)
        if not any(cells.any() for cells in found.values()):
            break
        density[found["floating"] | found["thin_overhang"]] = open_m
        water &= ~found["unheld_water"]
        density[found["lava_water"]] = solid_m
        lava &= ~found["lava_water"]
    return density, water, lava


def simulate_region(region: Region, style: str, sliders: dict[str, float], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(density metres, material uint8) of the region with the style's features at the sliders' amounts."""
    if style not in STYLE_FEATURES:
        raise ValueError(f"unknown style {style!r}; known: {sorted(STYLE_FEATURES)}")
    unknown = set(sliders) - set(SLIDER_NAMES)
    if unknown:
        raise ValueError(f"unknown sliders {sorted(unknown)}; known: {SLIDER_NAMES}")
    rates = STYLE_FEATURES[style]
    rng = np.random.default_rng(seed)
    caves, overhang = sliders.get("cave_density", 0.5), sliders.get("overhang", 0.5)
    vs = region.voxel_size
    density = lean_overhangs(rng, region, rates, overhang)
    density = add_arches(rng, region, rates, overhang, density)
    tunnels = carve_tunnels(rng, region, rates, caves)
    caverns, water, lava = carve_caverns(rng, region, rates, caves, _smooth_noise(rng, region.shape, 2.0))
    density = np.minimum(density, np.minimum(tunnels, caverns) * vs).astype(np.float32)
    density, water, lava = clean(region, density, water, lava)
    terrain_depth = region.terrain_depth()
    density = terrain_outside_features(density, terrain_depth)
    ore = ore_veins(rng, region.shape, rates.ore)
    material = compose(density > 0, terrain_depth, region.z, rates.cover, ore, water, lava)
    return density, material
