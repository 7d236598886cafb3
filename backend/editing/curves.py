"""Curve guides: a line the artist draws becomes a ridge, a river or a cliff.

The 1D profile model (``backend.generators.curve_profiles``) fills in the line's height between its two ends,
which are pinned to the terrain under them plus the artist's offset (ridge higher, cliff top half a step up,
a river on the ground itself); a cross-section turns that profile into a target over a band ``width`` cells
wide (a river's wider where it cuts deep), and the masked guided edit (``guided.edit_window``) makes terrain of it
on the curve's window only: outside the band nothing changes, bit for bit.

Cross-sections, with t = distance to the curve / half the width and u the position along it:

* ridge: the crest is the profile: the ground along the curve, Gaussian-smoothed over an eighth of
  the curve (so it bridges small dips and passes over small bumps), raised by the offset plus the
  profile's deviation (its peaks and saddles); every cell is lifted by the crest's height over the
  ground on the curve times (1 - t)^2: a sharp crest and soft feet, the cross-slope's texture kept, with the
  feet's t stretched where the land runs against a ridge (``brushes.land_reach``): spurs along its own spurs;
* river: the ends sit on the ground where the curve ends; the bed lies ``RIVER_DEPTH`` times the width (times
  strength) under the ground along the curve and under the lower of the ground at the band's two edges, its
  banks (tapering to the ground within a width of the ends), the profile adding its riffles (``river_bed``),
  fitted to fall all the way from the higher end to the lower one, with no flat stretch (only a dip deeper
  than its mouth is crossed at the mouth's level); the target is
  that bed over the middle ``BED_FRACTION`` of the band and banks easing back to the ground, never above
  it, the band widened where the bed lies deep so the banks stand no steeper than ``GORGE_WALL_DEG``
  (``band_reach``, ``river_banks``); the channel (``CHANNEL_FRACTION`` of the band, at least a cell either
  side) ends exactly on the bed, and the pull onto the target fades out over twice the bed's width, so the
  models' ground meets it without a kerb;
* cliff: the profile is the cliff top, following the ground like a ridge; the side left of the
  drawing direction (right when flipped) is levelled toward it, the other toward one step (the offset)
  lower, with a face ``CLIFF_FACE_CELLS`` either side of the curve.

The ridge's offset (and the cliff's step) is ``strength`` times a quarter of the terrain's relief, as for
brushes. After the guided edit the erosion stage wears a ridge's or a cliff's band, as for brushes (not a
river's: see RECIPES).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.ndimage as ndi
import torch
from scipy.interpolate import PchipInterpolator

from backend.data.elevation_profiles import KINDS, chord
from backend.generators.curve_profiles import sample_profiles
from backend.models.profile import ProfileModel
from backend.models.terrain import TerrainModel
from backend.simulation.landscape import scaled

from .brushes import (RELIEF_PER_STRENGTH, arc_lengths, descending, drained, falloff, land_reach, nearest_on_path,
                      window_around)
from .guided import LIGHT, MIN_FALL, Edit, EditCallback, EditSettings, Recipe, edit_window, network_units
from .scale import mesh_margin

BED_FRACTION = 0.3  # river: share of the band that is flat bed in its target (the rest is banks)
CHANNEL_FRACTION = 0.1  # river: share of the band either side of the curve that ends exactly on the bed
CLIFF_FACE_CELLS = 1.0  # cliff: the face spans this many cells either side of the curve
FOLLOW_SIGMA = 1 / 8  # ridge / cliff: ground smoothing along the curve, as a share of its samples
MIN_RELIEF_M = 1.0  # a flat terrain still gets a (small) offset unit
# As the ridge and valley brushes: new detail, then worn; a cliff's fresh face is the point: worn half as much.
# A river is not worn: the stage filled its pinned trench from the banks beside it, which it raised into levees
# up to 43 m high with a line of pits along each (49 pits within half a width of it; 3 unworn)
RECIPES = {"ridge": Recipe(detail_sigma=0.4, erosion=LIGHT), "river": Recipe(detail_sigma=0.4),
           "cliff": Recipe(detail_sigma=0.4, erosion=scaled(LIGHT, 0.5))}
RIVER_DEPTH = 0.1  # river: the bed's depth under the ground, as a share of the band's width, at strength 1
RIFFLE = 0.25  # river: the profile model's riffles and steps, in depths either side of its design bed
# river: its bed falls at least this much per metre, a quarter of a carved valley's floor: on a floor falling at
# the valley's rate, a bed cut deeper upstream (under a low bank) could never come back up to its depth
RIVER_FALL = MIN_FALL / 4
# river: where its bed lies deep under the ground (across a spur or a divide) its band widens so that its banks, a
# smoothstep from the bed's edge to the band's (steepest at 1.5x its mean), stand no steeper than this: at the
# artist's width, a River through the README's 230 m spur was a slot 40 m wide with walls of 75 degrees
GORGE_WALL_DEG = 35.0
RIVER_TAPER = 0.1  # river: share of its length (at most its width) over which its depth grows from 0 at either end
OFFSET_SIGN = {"ridge": 1.0, "river": 0.0, "cliff": 0.5}  # the ends' offset, in offsets: a cliff top is half up


@dataclass(frozen=True)
class Curve:
    """A guide line on the height grid and how it shapes the ground."""

    kind: str  # one of KINDS
    points: np.ndarray  # (N, 2) float64 row, column (cells, fractional), in drawing order
    width: float  # cells: full width of the band the curve reshapes
    strength: float  # [0, 1]
    flip: bool = False  # cliff: the high side is right of the drawing direction instead of left

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"curve kind must be one of {list(KINDS)}, got {self.kind!r}")

    @property
    def reach(self) -> float:
        return self.width / 2

    def arc(self) -> np.ndarray:
        """(N,) arc length (cells) at each point."""
        return arc_lengths(self.points)

    def samples(self, n: int) -> np.ndarray:
        """(n, 2) positions evenly spaced in arc length from the first point to the last."""
        s = self.arc()
        t = np.linspace(0.0, s[-1], n)
        return np.stack([np.interp(t, s, self.points[:, k]) for k in range(2)], axis=1)

    def window(self, shape: tuple[int, int], margin: int, align: int, reach: float | None = None
               ) -> tuple[int, int, int, int]:
        """The band (``reach`` cells either side, the artist's by default) plus ``margin``, aligned, clipped."""
        return window_around(self.points, self.reach if reach is None else reach, shape, margin, align)


def follow_ground(ground: np.ndarray) -> np.ndarray:
    """(L,) ground heights along the curve -> their smoothed deviation from the chord, exactly 0 at both ends.

    The deviation is extended oddly about each end before the Gaussian, so the ends stay at 0.
    """
    d = ground - chord(ground[0], ground[-1], len(ground))
    extended = np.concatenate([-d[1:][::-1], d, -d[:-1][::-1]])
    smooth = ndi.gaussian_filter1d(extended, FOLLOW_SIGMA * len(ground), mode="nearest")
    out = smooth[len(d) - 1:2 * len(d) - 1]
    out[0] = out[-1] = 0.0
    return out


def curve_profile(model: ProfileModel, heights: np.ndarray, curve: Curve, cell_size: float,
                  seed: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(the profile (L,) metres along the curve, the ground (L,) under it, the offset in metres)."""
    n = model.length
    ground = ndi.map_coordinates(heights.astype(np.float64), curve.samples(n).T, order=1, mode="nearest")
    relief = max(float(np.ptp(heights)), MIN_RELIEF_M)
    offset = curve.strength * RELIEF_PER_STRENGTH * relief
    ends = ground[[0, -1]] + OFFSET_SIGN[curve.kind] * offset
    extent = (max(heights.shape) - 1) * cell_size
    profile = sample_profiles(model, curve.kind, ends[None], np.array([curve.arc()[-1] * cell_size]),
                              np.array([relief]), np.array([extent]), seed)[0]
    if curve.kind == "river":
        return river_bed(profile, ground, banks_under(heights, curve, n), curve, cell_size), ground, offset
    return profile + follow_ground(ground), ground, offset


def banks_under(heights: np.ndarray, curve: Curve, n: int) -> np.ndarray:
    """(n,) the lower of the ground at the band's two edges (its reach either side), evenly along the curve."""
    points = curve.samples(n)
    along = np.gradient(points, axis=0)
    across = np.c_[-along[:, 1], along[:, 0]] / np.maximum(np.linalg.norm(along, axis=1), 1e-9)[:, None]
    sides = [ndi.map_coordinates(heights.astype(np.float64), (points + sign * curve.reach * across).T, order=1,
                                 mode="nearest") for sign in (1, -1)]
    return np.minimum(*sides)


def river_bed(profile: np.ndarray, ground: np.ndarray, banks: np.ndarray, curve: Curve,
              cell_size: float) -> np.ndarray:
    """(L,) the profile made a river bed: its design depth under the ground and its lower bank (``banks_under``)
    (on the ground at the ends), falling all the way from the higher end to the lower one, where it meets the
    ground. A curve drawn along a valley's side has one bank far below the ground on the
    curve: the bed cuts under that bank too (down to its mouth's level), or the river would spill over it.

    The profile model only adds its riffles (its deviation from its own trend, within ``RIFFLE`` depths): its
    concave long profile between the two ends lay far under a valley floor that falls evenly. The bed is fitted
    to fall (least squares, ``drained``: a bump on the way half cut, the hollow before it half filled) rather than
    cut down to its lowest point, which ran it 2.5 depths under the ground downstream of every bump; it is then
    kept no shallower than its design less a riffle, and cut where that needs it to stay falling."""
    n, length = len(ground), curve.arc()[-1]
    u = np.linspace(0.0, 1.0, n)
    ramp = min(RIVER_TAPER, curve.width / max(length, 1e-9))  # within a width of its ends it meets the ground
    taper = 1 - falloff(np.minimum(u, 1 - u) / ramp, "smooth")  # 0 at the ends, 1 inside
    depth = curve.strength * RIVER_DEPTH * curve.width * cell_size
    step = length * cell_size / (n - 1)  # metres along the curve per sample
    under = ground - taper * (depth + np.maximum(ground - banks, 0))  # a depth under the ground and the lower bank
    trend = ndi.gaussian_filter1d(profile, FOLLOW_SIGMA * n, mode="nearest")
    riffles = np.clip(profile - trend, -RIFFLE * depth, RIFFLE * depth)
    fitted = drained(under + taper * riffles, RIVER_FALL * step)
    # never shallower than its depth less a riffle, still falling
    bed = descending(np.minimum(fitted, under + taper * RIFFLE * depth), RIVER_FALL * step)
    high, low = (0, -1) if bed[0] >= bed[-1] else (-1, 0)
    to_end = np.abs(np.arange(n) - np.arange(n)[low])  # samples to the lower end
    # a dip on the way deeper than the lower end's ground is crossed at that level, still falling (a river
    # cannot leave a basin lower than its mouth), and never above the higher end
    fall = min(RIVER_FALL * step, max(bed[high] - ground[low], 0.0) / (n - 1))
    return np.maximum(bed, ground[low] + fall * to_end)


def band_reach(curve: Curve, profile: np.ndarray, ground: np.ndarray, cell_size: float) -> np.ndarray:
    """(L,) the band's half width in cells along the curve (as ``profile``): the artist's, and for a river wide
    enough where its bed lies under the ground on the curve that its banks stand no steeper than GORGE_WALL_DEG
    (a gorge's V through high ground, not a slot); widened over twice the artist's half width along the curve
    each way and eased over one, so the walls do not jump."""
    reach = np.full(len(profile), curve.reach)
    if curve.kind != "river":
        return reach
    bed = BED_FRACTION * curve.reach
    mean_slope = np.tan(np.radians(GORGE_WALL_DEG)) / 1.5
    need = bed + np.maximum(ground - profile, 0.0) / (mean_slope * cell_size)
    per_cell = (len(profile) - 1) / max(curve.arc()[-1], 1e-9)  # samples per cell of arc
    span = max(1.0, curve.reach * per_cell)
    widened = ndi.gaussian_filter1d(ndi.maximum_filter1d(need, int(4 * span) + 1, mode="nearest"), span,
                                    mode="nearest")
    return np.maximum(reach, widened)


def channel_cells(reach: float) -> float:
    """A river's channel, the cells within this distance of its curve (at least one): exactly on its bed."""
    return max(1.0, CHANNEL_FRACTION * reach)


def curve_target(curve: Curve, window: tuple[int, int, int, int], window_m: np.ndarray, profile: np.ndarray,
                 ground: np.ndarray, offset: float, reach: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(target metres, weight in [0, 1], pinned: how much of each cell ends on the target) over the window, all
    (h, w); ``reach``: the band's half width along the curve (``band_reach``)."""
    s = curve.arc()
    along = np.c_[curve.points, s / s[-1]]
    d, u, side = nearest_on_path(along, window)
    at = lambda values: np.interp(u, np.linspace(0.0, 1.0, len(values)), values)  # noqa: E731
    band = at(reach)
    t = d / band
    p = bed_between(profile, u) if curve.kind == "river" else at(profile)
    weight = falloff(t, "smooth")  # 1 on the curve, 0 from the band's edge on, no crease there
    pinned = np.zeros(window_m.shape)
    if curve.kind == "ridge":  # lift every cell by the crest's height over the ground on the curve; its feet
        units = network_units(window_m)  # reach as far as the land's spurs (``land_reach``), the crest kept
        share = land_reach(torch.from_numpy((window_m - units.lo) * units.to_net), curve.reach, 1.0).numpy()
        feet = t * (1 + (1 / share - 1) * t * t)  # t on the crest and its shoulders, t / share at the band's edge
        target = window_m + np.clip(1 - feet, 0, 1) ** 2 * (p - at(ground))
    elif curve.kind == "river":
        # its channel exactly, the rest of the bed eased into what the models draw beside it (no kerb at its edge)
        channel = channel_cells(curve.reach)
        pinned = falloff(np.maximum(d - channel, 0) / max(2 * BED_FRACTION * curve.reach - channel, 1), "smooth")
        banks, weight = river_banks(curve, window, window_m, profile, reach)
        # never under the bed beside them (unless the ground is): on a steep bed the lowest bank of the points
        # around came from the bed downstream, up to 9 m under the bed at its edge (a kerb, blocky steps in the
        # hillshade); the bed itself as the profile says, even where it crosses a dip deeper than its mouth (filled)
        banks = np.maximum(banks, np.minimum(p, window_m))
        return np.where(d <= BED_FRACTION * curve.reach, p, banks), weight, pinned
    else:
        high = -side if curve.flip else side
        level = p - offset * falloff((high * d + CLIFF_FACE_CELLS) / (2 * CLIFF_FACE_CELLS), "smooth")
        target = window_m + weight * (level - window_m)
    return np.where(t < 1, target, window_m), weight, pinned


def bed_between(profile: np.ndarray, u: np.ndarray) -> np.ndarray:
    """A river's bed at positions ``u`` in [0, 1] along the curve, between the (L,) profile's samples: monotone
    cubic (PCHIP), so it keeps falling and its slope changes smoothly. Linear between samples a few cells apart,
    the pinned bed's slope changed in steps and drew rectangles of one shade each in the hillshade."""
    return PchipInterpolator(np.linspace(0.0, 1.0, len(profile)), profile)(np.clip(u, 0.0, 1.0))


def river_banks(curve: Curve, window: tuple[int, int, int, int], window_m: np.ndarray, profile: np.ndarray,
                reach: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(banks target metres, weight) of a river over the window: at each point of the curve (every half cell) its
    bed (``profile``) over the middle ``BED_FRACTION`` of the artist's band and banks easing back to the ground over
    its ``reach`` (``band_reach``), never above the ground; the target is the lowest of these, the weight the
    largest. Taken from the nearest point alone, a band wider than a bend's radius met itself inside the bend
    where that point jumps along the curve, and the bed and band widths jumped with it: hatched steps of 3-6 m."""
    r0, c0, r1, c1 = window
    n = max(len(profile), int(np.ceil(2 * curve.arc()[-1])) + 1)
    u, stations = np.linspace(0.0, 1.0, len(profile)), np.linspace(0.0, 1.0, n)
    beds, bands = bed_between(profile, stations), np.interp(stations, u, reach)
    bed = BED_FRACTION * curve.reach  # the artist's bed, however wide the banks
    target, weight = window_m.copy(), np.zeros(window_m.shape)
    for (row, col), level, band in zip(curve.samples(n), beds, bands):
        rows = slice(max(int(row - band) - r0, 0), max(min(int(row + band) + 2 - r0, r1 - r0), 0))
        cols = slice(max(int(col - band) - c0, 0), max(min(int(col + band) + 2 - c0, c1 - c0), 0))
        rr, cc = np.mgrid[rows, cols]
        dist = np.hypot(rr + r0 - row, cc + c0 - col)
        ground = window_m[rows, cols]
        bank = falloff((dist - bed) / (band - bed), "smooth")  # 1 on the bed
        target[rows, cols] = np.minimum(target[rows, cols], ground + bank * np.minimum(level - ground, 0.0))
        weight[rows, cols] = np.maximum(weight[rows, cols], falloff(dist / band, "smooth"))
    return np.where(weight > 0, target, window_m), weight


def apply_curve(base: TerrainModel, superres: TerrainModel, profile_model: ProfileModel, heights: np.ndarray,
                curve: Curve, style_weights: dict[str, float], sliders: dict[str, float], guidance: float,
                cell_size: float, seed: int, settings: EditSettings = EditSettings(),
                on_step: EditCallback | None = None) -> tuple[Edit, np.ndarray]:
    """(the edited window of ``heights`` (H, W float32 metres), the profile (L,) metres along the curve)."""
    profile, ground, offset = curve_profile(profile_model, heights, curve, cell_size, seed)
    reach = band_reach(curve, profile, ground, cell_size)
    window = curve.window(heights.shape, mesh_margin(settings.margin, cell_size, superres.meta["cell_size_m"]),
                          superres.meta["factor"], float(reach.max()))
    r0, c0, r1, c1 = window
    target_m, weight, pinned = curve_target(curve, window, heights[r0:r1, c0:c1].astype(np.float64), profile,
                                            ground, offset, reach)
    t = torch.from_numpy(network_units(heights).net(target_m))
    edit = edit_window(base, superres, heights, window, torch.from_numpy(weight), t, RECIPES[curve.kind],
                       style_weights, sliders, guidance, seed, cell_size, settings, on_step,
                       torch.from_numpy(pinned * (weight > 0)))
    return edit, profile
