"""A brush stroke on a height grid: the window it touches, its weight mask and its target field.

Pure numpy and torch, no model: ``guided.py`` turns the target into natural terrain. Coordinates are
grid cells (row 0 north, column 0 west), heights are metres. Every brush is "move the window toward a
target by the stroke's weight"; the weight is the falloff of the distance to the stroke path times the
pen pressure, so it reaches 0 smoothly at the radius and nothing outside the radius is touched. A
``RegionStroke`` (an artist's selection) has the same window, weight and target, from a mask instead of a path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.ndimage as ndi
from scipy.optimize import isotonic_regression
import torch
import torch.nn.functional as F

from backend.diffusion.guidance import gaussian_blur

DISPLACE = {"raise": 1.0, "lower": -1.0, "ridge": 1.0, "valley": -1.0}
# kind -> (label, what it does): the brush job's kinds, and the add-on's Brush menu (hello_reply), in this order
KIND_NOTES: dict[str, tuple[str, str]] = {
    "raise": ("Raise", "Push the ground up over the inner half of the circle (the rest blends it in)"),
    "lower": ("Lower", "Push the ground down over the inner half of the circle (the rest blends it in)"),
    "smooth": ("Smooth", "Soften the relief"),
    "flatten": ("Flatten", "Level the ground to the height under the stroke's first point"),
    "ridge": ("Ridge", "A crest line along the stroke, over the inner half of the circle (the rest blends it in)"),
    "valley": ("Valley", "A valley along the stroke, over the inner half of the circle (the rest blends it in)"),
    "regenerate": ("Regenerate", "New terrain of the current style inside the stroke"),
    "style_paint": ("Style Paint", "Repaint the stroke's ground in the brush style, keeping its large forms "
                                   "(strength: how much of the style's detail)"),
    "erode": ("Erode", "The erosion stage under the brush: rivers cut in and branch, slopes relax "
                       "(strength: how long)"),
}
KINDS = tuple(KIND_NOTES)
REGION_KINDS = ("regenerate", "style_paint", "erode")  # need no path: they re-sample (or wear) what they cover
# falloff -> (label, its profile from the stroke's path to its radius): the add-on's Falloff menu
FALLOFF_NOTES: dict[str, tuple[str, str]] = {
    "smooth": ("Smooth", "Smoothstep: no crease at the rim"),
    "sphere": ("Sphere", "A dome: full over most of the radius, steep at the rim"),
    "linear": ("Linear", "Falls evenly to the rim"),
    "constant": ("Constant", "Full strength out to the rim"),
}
FALLOFFS = tuple(FALLOFF_NOTES)
RELIEF_PER_STRENGTH = 0.25  # raise/lower/ridge/valley at strength 1: a quarter of the terrain's relief
LAND_SCALE = 0.5  # a shaped footprint reads the land's highs and lows at this share of the radius
LAND_GAIN = 2.0  # how sharply: a high one spread (std) above the land around agrees 88 % with a raise
SPUR_PULL = 0.5  # where the land runs against the edit its footprint reaches this much less far
MIN_SPREAD = 1e-3  # network units: flat land has no highs or lows to follow
# a valley's stream, fitted to fall (least squares) rather than cut down to its lowest point downstream, lies at
# least this share of its design depth under the ground: fitted alone, it filled the hollow before a spur into a
# raised tube
STREAM_HELD = 0.5
ROUND_CELLS = 4.0  # a valley's path rounded through its corners: a point every this many cells of the bend
GRADE = 1.0  # flatten: its cut or fill eases back at most this many times the land's mean slope
# raise, lower, ridge and valley shape the ground over this share of the radius, and the rest of the circle blends
# the shape into the land: shaped over the whole circle, the edit's blend into the land (its weight, the models' new
# detail and the erosion stage's wear, all at the models' 30 m cells) lay over the shape's own flanks and drew a
# capsule around it, a rim line and round end caps (the README's 34-cell valley: ~9 model cells). The same shapes in
# a circle twice as wide have none: the curvature that follows the footprint's outline (RMS over rings of the mean
# Laplacian over its std) on three strokes of the README world 0.16-0.18 for a valley, 0.12-0.22 a ridge, 0.13-0.26
# a raise, the land 0.10-0.17; shaped over their whole circle 0.37-0.46, 0.16-0.36, 0.22-0.46
SHAPE_SHARE = 0.5
BLUR_CELLS = 4.0  # a wide blur runs on a grid where its sigma spans this many cells


@dataclass(frozen=True)
class Stroke:
    """One stroke: the path the pen followed and how the brush was set."""

    kind: str
    points: np.ndarray  # (N, 3) float64: row, column (cells, fractional), pressure in [0, 1]
    radius: float  # cells
    strength: float  # [0, 1]
    falloff: str = "smooth"
    height_m: float | None = None  # flatten: the picked height (None: the height under the first point)

    def window(self, shape: tuple[int, int], margin: int, align: int) -> tuple[int, int, int, int]:
        return window_around(self.points[:, :2], self.radius, shape, margin, align)


@dataclass(frozen=True)
class RegionStroke:
    """An edit of a region the artist selected (vertices, a vertex group) instead of a path the pen drew.

    The weight is the region's own value (1 where selected; values in between soften it) times a falloff
    that rises from 0 at the region's rim to 1 at ``edge`` cells inside, so the edit blends in without a
    seam and nothing outside the region is touched.
    """

    kind: str  # one of REGION_KINDS: the edits that need no path
    mask: np.ndarray  # (H, W) float in [0, 1] over the whole grid; 0 = not selected
    edge: float = 8.0  # cells from the rim to full weight
    falloff: str = "smooth"
    strength: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in REGION_KINDS:
            raise ValueError(f"a region edit's kind must be one of {list(REGION_KINDS)}, got {self.kind!r}")

    def window(self, shape: tuple[int, int], margin: int, align: int) -> tuple[int, int, int, int]:
        """The region's bounding box plus ``margin`` cells, aligned and clipped like a stroke's window."""
        rows, cols = np.nonzero(self.mask > 0)
        lo, hi = np.array([rows.min(), cols.min()]), np.array([rows.max(), cols.max()]) + 1
        return _aligned_window(lo - margin, hi + margin, shape, align)


def window_around(points: np.ndarray, reach: float, shape: tuple[int, int], margin: int,
                  align: int) -> tuple[int, int, int, int]:
    """(row0, col0, row1, col1): the (N, 2) path's reach plus ``margin`` cells of context, edges on
    multiples of ``align`` (the super-resolution factor), clipped to the grid."""
    reach = reach + margin
    return _aligned_window(points.min(0) - reach, points.max(0) + reach + 1, shape, align)


def _aligned_window(lo: np.ndarray, hi: np.ndarray, shape: tuple[int, int], align: int) -> tuple[int, int, int, int]:
    """Cells [lo, hi) (row, col) widened to multiples of ``align`` and clipped to the grid."""
    lo, hi = np.floor(lo / align) * align, np.ceil(hi / align) * align
    r0, c0 = (int(max(0, v)) for v in lo)
    r1, c1 = int(min(shape[0], hi[0])), int(min(shape[1], hi[1]))
    return r0, c0, r1, c1


def falloff(t: np.ndarray, kind: str) -> np.ndarray:
    """Weight at relative distance t = d / radius: 1 at the centre, 0 from t = 1 on."""
    t = np.clip(t, 0.0, 1.0)
    if kind == "smooth":  # smoothstep: zero slope at the rim, so the edit has no crease there
        return 1.0 - t * t * (3.0 - 2.0 * t)
    if kind == "sphere":
        return np.sqrt(1.0 - t * t)
    if kind == "linear":
        return 1.0 - t
    if kind == "constant":
        return (t < 1.0).astype(np.float64)
    raise ValueError(f"falloff must be one of {FALLOFFS}, got {kind!r}")


def nearest_on_path(points: np.ndarray, window: tuple[int, int, int, int]
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per window cell: distance (cells) to the polyline (N, 3) of (row, col, value), the value interpolated
    at the nearest point, and the side (+1 left of the drawing direction seen on the map, -1 right)."""
    r0, c0, r1, c1 = window
    rows, cols = np.meshgrid(np.arange(r0, r1, dtype=np.float64), np.arange(c0, c1, dtype=np.float64),
                             indexing="ij")
    cells = np.stack([rows, cols], -1)
    best = np.full(rows.shape, np.inf)
    value = np.zeros(rows.shape)
    side = np.ones(rows.shape)
    ends = [(points[i], points[min(i + 1, len(points) - 1)]) for i in range(max(1, len(points) - 1))]
    for a, b in ends:
        ab = b[:2] - a[:2]
        length2 = float(ab @ ab)
        u = np.zeros(rows.shape) if length2 == 0 else np.clip(((cells - a[:2]) @ ab) / length2, 0.0, 1.0)
        d = np.linalg.norm(cells - (a[:2] + u[..., None] * ab), axis=-1)
        closer = d < best
        best = np.where(closer, d, best)
        value = np.where(closer, a[2] + u * (b[2] - a[2]), value)
        # rows grow southwards: with (east, north) = (col, -row), left of travel is cross > 0
        cross = ab[1] * (a[0] - cells[..., 0]) + ab[0] * (cells[..., 1] - a[1])
        side = np.where(closer, np.where(cross < 0, -1.0, 1.0), side)
    return best, value, side


def rounded(points: np.ndarray, cut: float) -> np.ndarray:
    """The (N, 3) path with each inner corner replaced by a quadratic Bezier from ``cut`` cells before it (at most
    half of either segment) to as far after it, a point every ROUND_CELLS of it, pressure interpolated along: a
    carved valley turns through a bend, not a mitred corner (the distance to a polyline is creased on the inner side
    of each corner). A pen's dense stroke, its points a few cells apart, is left as it is."""
    if len(points) < 3:
        return points
    out = [points[0]]
    for a, v, b in zip(points[:-2], points[1:-1], points[2:]):
        la, lb = np.linalg.norm(v[:2] - a[:2]), np.linalg.norm(b[:2] - v[:2])
        c = min(cut, la / 2, lb / 2)
        if c < ROUND_CELLS:
            out.append(v)
            continue
        p0, p2 = v + (a - v) * c / la, v + (b - v) * c / lb
        u = np.linspace(0.0, 1.0, 2 + int(c // ROUND_CELLS))[:, None]
        out.extend((1 - u) ** 2 * p0 + 2 * u * (1 - u) * v + u ** 2 * p2)
    out.append(points[-1])
    return np.asarray(out)


def path_distance(points: np.ndarray, window: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Per window cell: distance (cells) to the stroke polyline and the pressure at the nearest point."""
    best, pressure, _ = nearest_on_path(points, window)
    return best, pressure


@dataclass(frozen=True)
class Footprint:
    """What the stroke covers in its window, as [h, w] float64 tensors."""

    distance: torch.Tensor  # cells to the stroke path
    pressure: torch.Tensor  # pen pressure at the nearest path point, [0, 1]
    weight: torch.Tensor  # falloff(distance / radius) * pressure, [0, 1]: 0 = untouched


def footprint(stroke: Stroke | RegionStroke, window: tuple[int, int, int, int]) -> Footprint:
    if isinstance(stroke, RegionStroke):
        return _region_footprint(stroke, window)
    d, pressure = path_distance(stroke.points, window)
    pressure = np.clip(pressure, 0.0, 1.0)
    w = falloff(d / stroke.radius, stroke.falloff) * pressure
    return Footprint(torch.from_numpy(d), torch.from_numpy(pressure), torch.from_numpy(w))


def _region_footprint(region: RegionStroke, window: tuple[int, int, int, int]) -> Footprint:
    """For a region, ``distance`` is the cells inside it to its rim and ``pressure`` its own value."""
    r0, c0, r1, c1 = window
    value = np.clip(region.mask[r0:r1, c0:c1].astype(np.float64), 0.0, 1.0)
    inside = ndi.distance_transform_edt(value > 0)  # cells to the nearest unselected one (0 outside)
    w = falloff(1.0 - inside / region.edge, region.falloff) * value
    return Footprint(torch.from_numpy(inside), torch.from_numpy(value), torch.from_numpy(w))


def descending(floor: np.ndarray, drop: float) -> np.ndarray:
    """(L,) heights along a line -> the highest line at or below them that falls by at least ``drop`` per sample
    from the higher end to the lower one: how water would run along it (no pits, no flat stretches)."""
    flip = floor[0] < floor[-1]
    f = floor[::-1] if flip else floor
    out = f.copy()
    for i in range(1, len(out)):
        out[i] = min(out[i], out[i - 1] - drop)
    return out[::-1] if flip else out


def drained(floor: np.ndarray, drop: float) -> np.ndarray:
    """(L,) heights along a line -> the line nearest them (least squares) that falls by at least ``drop`` per
    sample from the higher end to the lower one: a bump on the way is cut and the hollow before it filled
    half each, where ``descending`` cuts the whole line down to its lowest point (a deep ribbon downstream)."""
    flip = floor[0] < floor[-1]
    f = floor[::-1] if flip else floor
    fall = drop * np.arange(len(f))
    out = isotonic_regression(f + fall, increasing=False).x - fall
    return out[::-1] if flip else out


def _rising_fit_errors(y: np.ndarray) -> np.ndarray:
    """(L,) -> per k, the squared error of the least-squares non-decreasing fit to y[:k + 1]: pool adjacent
    violators run once, online (the fit of every prefix is the stack of blocks after it)."""
    sums, counts, squares = [], [], []
    errors, total = np.empty(len(y)), 0.0
    for k, value in enumerate(y):
        block = [float(value), 1, float(value) ** 2]
        while sums and sums[-1] / counts[-1] > block[0] / block[1]:
            total -= squares[-1] - sums[-1] ** 2 / counts[-1]
            block = [block[0] + sums.pop(), block[1] + counts.pop(), block[2] + squares.pop()]
        total += block[2] - block[0] ** 2 / block[1]
        sums.append(block[0]), counts.append(block[1]), squares.append(block[2])
        errors[k] = total
    return errors


def divided(floor: np.ndarray, drop: float) -> np.ndarray:
    """(L,) heights along a line -> the line nearest them (least squares) that rises by at least ``drop`` per sample
    to one divide and falls by as much after it (the divide may be either end: then it falls all the way).

    A carved valley drains as land does: where its path crosses a spur higher than the ground it came from, the
    valley heads at a divide there and falls away from it both ways, as valleys meet at a col. ``drained`` (one
    way only) cut such a spur as deep as falling all the way needed: the README's valley, across ground 100 m higher
    than its start, was cut 170 m deep for a design depth of about 96 m (99 m so), a gorge (reports/valleys/)."""
    k = np.arange(len(floor), dtype=np.float64)
    rising = floor - drop * k  # rising by drop a sample <=> this minus the fall non-decreasing
    falling = (floor + drop * k)[::-1]  # falling by drop a sample <=> this reversed non-decreasing
    up, down = _rising_fit_errors(rising), _rising_fit_errors(falling)[::-1]
    split = np.r_[down[0], up[:-1] + down[1:], up[-1]]  # the divide's side: 0 falls all the way, L rises
    m = int(np.argmin(split))  # samples [0, m) rise, [m, L) fall
    out = np.empty_like(floor, dtype=np.float64)
    if m:
        out[:m] = isotonic_regression(rising[:m], increasing=True).x + drop * k[:m]
    if m < len(floor):
        out[m:] = isotonic_regression(falling[::-1][m:], increasing=False).x - drop * k[m:]
    return away_from_divide(out, drop)


def away_from_divide(line: np.ndarray, drop: float) -> np.ndarray:
    """(L,) heights -> at or below them, falling by at least ``drop`` per sample from their highest point to both
    ends (``descending`` each way): no pit and no flat stretch along the line."""
    top = int(np.argmax(line))
    out = line.astype(np.float64).copy()
    out[:top + 1] = descending(out[:top + 1][::-1], drop)[::-1]
    out[top:] = descending(out[top:], drop)
    return out


def arc_lengths(points: np.ndarray) -> np.ndarray:
    """(N,) arc length (cells) at each of the (N, 2+) path's points, from its first."""
    return np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points[:, :2], axis=0), axis=1))])


def _path_samples(points: np.ndarray, window: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(arc length at each of the (N, 2+) path's points, rows and columns in the window of one sample a cell along
    it, first point to last)."""
    arc = arc_lengths(points)
    along = np.linspace(0.0, arc[-1], int(np.ceil(arc[-1])) + 1)
    return arc, *(np.interp(along, arc, points[:, k]) - window[k] for k in (0, 1))


def _on(heights: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    return ndi.map_coordinates(heights.astype(np.float64), [rows, cols], order=1, mode="nearest")


def stream_cap(stroke: Stroke, floor: np.ndarray, ground: np.ndarray, window: tuple[int, int, int, int]
               ) -> np.ndarray | None:
    """The highest a valley stroke's stream may lie: (L,) heights at one sample a cell along its path (None for a
    dab: nothing to drain along), STREAM_HELD of the way from the ``ground`` before the edit down to the target
    ``floor`` (window metres). Under it the stream is never a raised tube where it fills the hollow before a spur
    (``divided`` fits its line, cutting bumps and filling hollows half each)."""
    arc, rows, cols = _path_samples(stroke.points, window)
    if arc[-1] < 2:
        return None
    on_floor = _on(floor, rows, cols)
    return on_floor + STREAM_HELD * (_on(ground, rows, cols) - on_floor)


def burn_stream(stroke: Stroke, heights: np.ndarray, window: tuple[int, int, int, int], weight: np.ndarray,
                drop: float, reach: float, cap: np.ndarray) -> np.ndarray:
    """The window ``heights`` (metres) with a stream burnt along a valley stroke's path: the heights on the path
    fitted to rise to one divide and fall from it by at least ``drop`` m per cell (``divided``: the divide at an
    end when the path falls all the way), kept under ``cap`` (``stream_cap``, evenly spaced from the path's first
    point to its last); the cells within a cell of the path set on that line and those up to ``reach`` cells further
    eased toward it, only where ``weight`` > 0.

    Hydrological conditioning, as DEM pipelines burn known streams: the valley drains along its length."""
    arc, rows, cols = _path_samples(stroke.points, window)
    floor = _on(heights, rows, cols)
    held = np.interp(np.linspace(0.0, 1.0, len(floor)), np.linspace(0.0, 1.0, len(cap)), cap)
    bed = away_from_divide(np.minimum(divided(floor, drop), held), drop)
    d, at, _ = nearest_on_path(np.c_[stroke.points[:, :2], arc / arc[-1]], window)
    line = np.interp(at, np.linspace(0.0, 1.0, len(bed)), bed)
    burnt = np.where(d < 1, line, heights + (line - heights) * falloff((d - 1) / reach, "smooth"))
    return np.where(weight > 0, burnt, heights).astype(heights.dtype)


def stream_breach(stroke: Stroke, heights: np.ndarray, window: tuple[int, int, int, int], weight: np.ndarray,
                  drop: float, curvature: float) -> tuple[np.ndarray, float]:
    """The window ``heights`` (metres) with a valley stroke's stream breached through whatever dams it, carve only,
    where ``weight`` > 0, and the deepest cut on its path: per cell of arc along the path the lowest cell on it
    (d < 0.75), the highest line at or below those falling ``drop`` m a cell from their highest point to both ends
    (``away_from_divide``), and the ground around each cell of arc lowered by its floor's height above that line,
    fading out (smoothstep) over the distance that keeps the cut's curvature under ``curvature`` (m per cell²).

    Where the valley the models drew drains along the path nothing moves, so its floor keeps the shape the models
    and the erosion stage gave it. Easing a band either side onto a fitted line instead (cut and fill) gave every
    valley a flat floor, a canal; straight-walled notches creased the ground at their floor and rims."""
    arc = arc_lengths(stroke.points)
    if arc[-1] < 2:
        return heights, 0.0
    d, at, _ = nearest_on_path(np.c_[stroke.points[:, :2], arc / arc[-1]], window)
    n = int(arc[-1])
    sample = np.minimum((at * n).astype(int), n - 1)  # the cell of arc each cell's nearest path point lies in
    on = d < 0.75
    floor = np.full(n, np.inf)
    np.minimum.at(floor, sample[on], heights[on])
    known = np.isfinite(floor)
    floor = np.interp(np.arange(n), np.flatnonzero(known), floor[known])
    cut = floor - away_from_divide(floor, drop)
    reach = np.sqrt(6 * cut / curvature) + 1  # a smoothstep of depth c over w cells bends 6 c / w² at its floor
    lowered = cut[sample] * falloff(np.maximum(d - 0.75, 0.0) / reach[sample], "smooth")
    return np.where(weight > 0, heights - lowered, heights).astype(heights.dtype), float(cut.max())


def wide_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """``gaussian_blur`` of [h, w] for a wide ``sigma`` (cells), run on a grid shrunk (area) until sigma spans
    about BLUR_CELLS of its cells and grown back bicubically: at full size a 256² window's kernel of 290 taps
    cost 0.4 s; what it leaves is smooth at that scale anyway."""
    shrink = max(1, int(sigma / BLUR_CELLS))
    if shrink == 1 or min(x.shape) < 2 * shrink:
        return gaussian_blur(x, sigma)
    small = F.adaptive_avg_pool2d(x[None, None], [math.ceil(n / shrink) for n in x.shape])
    return F.interpolate(gaussian_blur(small, sigma / shrink), size=x.shape, mode="bicubic", align_corners=False)[0, 0]


def land_reach(x: torch.Tensor, radius: float, sign: float) -> torch.Tensor:
    """Per cell of the window ``x``, the share of the radius a displacing edit reaches there, in
    (1 - SPUR_PULL, 1]: all of it along the land's own highs (``sign`` +1: raise, ridge) or lows (-1: lower,
    valley), up to ``SPUR_PULL`` less where the land runs against the edit. Its footprint (distance / share)
    and its height (times the share) follow the land: a raised ridge grows spurs along the spurs already
    there, with gullies and saddles between them; a carved valley reaches up the side valleys. No outline of a
    stamp, and never further than the radius: nothing beyond it is touched."""
    relief = x - wide_blur(x, max(1.0, LAND_SCALE * radius))  # above (+) or below (-) the land around
    spread = relief.std().clamp_min(MIN_SPREAD) if relief.numel() > 1 else torch.tensor(MIN_SPREAD)
    agree = torch.sigmoid(LAND_GAIN * sign * relief / spread)
    return 1 - SPUR_PULL * (1 - agree)


def target(stroke: Stroke, x: torch.Tensor, fp: Footprint, flat_level: float) -> torch.Tensor:
    """Where the brush wants the window to go, in network space (x: the window, [-1, 1] over the terrain).

    ``flat_level`` is the flatten height in network space. regenerate, style_paint and erode return x itself:
    their change comes from sampling or from the erosion stage, not from a field.
    """
    kind, w = stroke.kind, fp.weight
    amplitude = 2 * RELIEF_PER_STRENGTH * stroke.strength  # the network range is 2 wide
    if kind in DISPLACE:
        reach = SHAPE_SHARE * stroke.radius
        share = land_reach(x, reach, DISPLACE[kind])
        t = fp.distance / (share * reach)
        if kind in ("raise", "lower"):
            shape = torch.from_numpy(falloff(t.numpy(), stroke.falloff))
        else:  # a crest (or trough) line along the path: sharp on it, soft feet, no crease at the rim
            shape = torch.clamp(1 - t, min=0) ** 2
        return x + DISPLACE[kind] * amplitude * share * shape * fp.pressure
    if kind == "smooth":
        return x + stroke.strength * w * (wide_blur(x, max(1.0, stroke.radius / 3)) - x)
    if kind == "flatten":
        return x + graded(stroke.strength * w * (flat_level - x), x, fp.distance / stroke.radius, stroke.radius)
    return x


def graded(change: torch.Tensor, x: torch.Tensor, t: torch.Tensor, radius: float) -> torch.Tensor:
    """A cut or fill ``change`` of the window ``x`` limited so that it grades back to the ground no steeper than
    GRADE times the land's mean slope, and not at all at the rim (t = distance / ``radius`` = 1): a bound of
    GRADE * slope * radius * (1 - t)^2 / 2. As earthworks grade back to the ground, the flattened stretch meets the
    land around it no steeper than the land is: flattened to one level across a slope, its banks were 1.6x as
    steep as the land around (and its texture 1.5x as rough: the roughness of resampled ground follows slope)."""
    gy, gx = torch.gradient(x)
    reach = GRADE * torch.hypot(gx, gy).mean() * radius * torch.clamp(1 - t, min=0) ** 2 / 2
    return torch.maximum(torch.minimum(change, reach), -reach)
