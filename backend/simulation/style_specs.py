"""Terrain styles as data: one ``StyleSpec`` per style, read by the simulation, the corpus, the classifier and
(through the backend's style list) the panel. Adding a style means adding one spec to ``STYLES``.

A spec says how the style's parameters are drawn (each ``Draw`` names its distribution, so nothing is
positional) and which of the simulation's processes shape it. Parameters are drawn in a fixed order, the
shared landscape's first (``Landscape``'s field order), then the style's own ``extras`` in their order,
so a seed gives the same map as long as the specs are unchanged. A new per-style group of parameters (one
process's, say) is one more ``ParameterGroup`` field of ``StyleSpec``, drawn after the existing ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Literal

import numpy as np


@dataclass(frozen=True)
class Uniform:
    low: float
    high: float

    def sample(self, rng: np.random.Generator) -> float:
        return float(rng.uniform(self.low, self.high))


@dataclass(frozen=True)
class LogUniform:
    """Uniform in log space: for scale parameters (relief, erodibility, diffusivity)."""

    low: float
    high: float

    def sample(self, rng: np.random.Generator) -> float:
        return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))

    @property
    def typical(self) -> float:
        """The middle of the range in log space (the geometric mean of its ends)."""
        return math.sqrt(self.low * self.high)


@dataclass(frozen=True)
class Integers:
    """A whole number in [low, high], both included (kept as a float like every parameter)."""

    low: int
    high: int

    def sample(self, rng: np.random.Generator) -> float:
        return float(rng.integers(self.low, self.high + 1))


Draw = Uniform | LogUniform | Integers


@dataclass(frozen=True, kw_only=True)
class ParameterGroup:
    """The parameters of one process, each a ``Draw``, drawn in field order. A style spec's fields of this
    kind are drawn after its extras, in the spec's field order (the landscape's first of all)."""

    def sample(self, rng: np.random.Generator) -> dict[str, float]:
        return {f.name: getattr(self, f.name).sample(rng) for f in fields(self)}

    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in fields(self))


@dataclass(frozen=True, kw_only=True)
class Landscape(ParameterGroup):
    """The shared uplift-erosion pipeline's parameters, drawn in this field order."""

    relief_m: LogUniform  # the map's relief after scaling to metres
    fbm_beta: Uniform = Uniform(1.8, 2.4)  # spectral slope of the initial fBm surface
    init_amplitude: Uniform = Uniform(0.05, 0.2)  # initial fBm relief, a fraction of ``styles.INITIAL_RELIEF``
    # Stream-power incision per step (K dt, ``evolution.Evolution``): with the steps, how far knickpoints
    # from the few outlets got (low values leave un-incised uplifted plateaus).
    k_cells: LogUniform
    m: Uniform = Uniform(0.4, 0.5)  # stream-power area exponent
    hillslope_m: LogUniform  # hillslope length where channels take over (sets the diffusivity), metres
    steps: Integers  # uplift-erosion steps
    talus_deg: Uniform  # thermal erosion's angle of repose
    hydraulic_rain: LogUniform  # rain of the final hydraulic erosion


@dataclass(frozen=True, kw_only=True)
class ProceduralLook:
    """How the procedural (fractal, not simulated) generator draws the style."""

    wavelength_m: float  # size of the largest features, metres (so a bigger world holds more of them)
    gain: float = 0.5  # octave amplitude ratio at roughness 0.5
    ridge: float  # 0 = smooth fBm, 1 = ridged multifractal (sharp crests)
    warp: float  # domain-warp displacement, in tile widths
    stretch: float = 1.0  # > 1 squeezes features east-west into long north-south ridges (dunes)
    terrace: float = 0.0  # 0..1 flat steps with cliffs (mesas)
    island: float = 0.0  # 0..1 falloff to the sea towards the edges
    cone: float = 0.0  # 0..1 central volcanic cone with a crater
    exponent: float = 1.0  # > 1 flattens lowlands into broad U-shaped valleys
    sea_level: float = 0.0  # fraction of the relief under water, unless the slider says otherwise


UpliftPattern = Literal["noise", "range", "plateau", "islands", "cones"]


@dataclass(frozen=True, kw_only=True)
class StyleSpec:
    """One terrain style: its parameter distributions and the processes that shape it."""

    name: str
    landscape: Landscape
    procedural: ProceduralLook
    extras: dict[str, Draw] = field(default_factory=dict)  # the style's own parameters, drawn in this order
    uplift: UpliftPattern = "noise"  # where rock rises (``styles.UPLIFT_PATTERNS``; "range" reads
    #   ridge_anisotropy, "islands" island_threshold, "cones" cones and cone_radius)
    ocean: bool = False  # the whole map edge is base level (islands in a sea), not a few outlets
    plateau: float = 0.0  # the initial surface starts this many steps of uplift high (an old plateau)
    strata: bool = False  # flat-lying hard and soft layers (layer_cells, hard_fraction, hard_ratio)
    glaciers: bool = False  # glacial troughs carved after the fluvial stage (trough_*, ela)
    crater: bool = False  # a crater in the highest cone (crater_frac)
    dunes: bool = False  # wind-blown sand (sand_m, dune_iterations, wind_dir, slab_m, dune_pick)
    drainage: float = 1.0  # share of the erosion stage after sampling (``landscape.EROSION_STAGES``) the style
    #   takes: 0 for land shaped by wind, where a river network carved into it would be wrong

    def groups(self) -> list[ParameterGroup]:
        """The spec's parameter groups after the landscape, in field order."""
        found = [getattr(self, f.name) for f in fields(self) if f.name != "landscape"]
        return [g for g in found if isinstance(g, ParameterGroup)]

    def sample(self, rng: np.random.Generator) -> dict[str, float]:
        """One flat parameter set: the landscape's, no sea, the extras (a sea_level extra sets the sea), then
        every further parameter group's."""
        params = {**self.landscape.sample(rng), "sea_level": 0.0}  # fraction of the relief below sea
        params.update({name: draw.sample(rng) for name, draw in self.extras.items()})
        for group in self.groups():
            params.update(group.sample(rng))
        return params


STYLES: dict[str, StyleSpec] = {spec.name: spec for spec in (
    StyleSpec(name="alpine", uplift="range",
              procedural=ProceduralLook(wavelength_m=3000.0, ridge=0.85, warp=0.08, exponent=1.6),
              landscape=Landscape(relief_m=LogUniform(1200, 2800), k_cells=LogUniform(0.7, 1.5),
                                  hillslope_m=LogUniform(70, 140), steps=Integers(130, 170),
                                  talus_deg=Uniform(34, 40), hydraulic_rain=LogUniform(0.1, 0.5)),
              extras={"snow_line": Uniform(0.55, 0.8), "ridge_anisotropy": Uniform(1.0, 2.5)}),
    StyleSpec(name="rolling_hills",
              procedural=ProceduralLook(wavelength_m=2500.0, gain=0.42, ridge=0.0, warp=0.05),
              landscape=Landscape(relief_m=LogUniform(80, 300), init_amplitude=Uniform(0.1, 0.3),
                                  k_cells=LogUniform(0.7, 1.5), hillslope_m=LogUniform(60, 110),
                                  steps=Integers(130, 170), talus_deg=Uniform(30, 36),
                                  hydraulic_rain=LogUniform(0.05, 0.2))),
    StyleSpec(name="desert_dunes", dunes=True, drainage=0.0,
              procedural=ProceduralLook(wavelength_m=600.0, gain=0.35, ridge=0.9, warp=0.03, stretch=4.0),
              landscape=Landscape(relief_m=LogUniform(20, 120), k_cells=LogUniform(0.05, 0.15),
                                  hillslope_m=LogUniform(100, 200), steps=Integers(40, 60),
                                  talus_deg=Uniform(30, 34), hydraulic_rain=LogUniform(0.01, 0.05)),
              extras={"sand_m": Uniform(15.0, 25.0), "dune_iterations": Integers(250, 399),
                      "wind_dir": Integers(0, 3), "slab_m": Uniform(2.0, 4.0), "dune_pick": Uniform(0.4, 0.8)}),
    StyleSpec(name="canyon_mesa", uplift="plateau", plateau=0.3, strata=True,
              procedural=ProceduralLook(wavelength_m=2500.0, ridge=0.2, warp=0.10, terrace=0.85, exponent=0.7),
              landscape=Landscape(relief_m=LogUniform(300, 1200), init_amplitude=Uniform(0.05, 0.15),
                                  k_cells=LogUniform(0.3, 0.8), hillslope_m=LogUniform(15, 30),
                                  steps=Integers(100, 140), talus_deg=Uniform(55, 70),
                                  hydraulic_rain=LogUniform(0.1, 0.5)),
              extras={"layer_cells": Uniform(0.08, 0.2), "hard_fraction": Uniform(0.3, 0.6),
                      "hard_ratio": Uniform(0.05, 0.2)}),
    StyleSpec(name="archipelago", uplift="islands", ocean=True,
              procedural=ProceduralLook(wavelength_m=2500.0, ridge=0.3, warp=0.12, island=0.8, exponent=1.2, sea_level=0.5),
              landscape=Landscape(relief_m=LogUniform(400, 1500), k_cells=LogUniform(0.7, 1.5),
                                  hillslope_m=LogUniform(50, 100), steps=Integers(130, 170),
                                  talus_deg=Uniform(32, 38), hydraulic_rain=LogUniform(0.1, 0.5)),
              extras={"sea_level": Uniform(0.45, 0.7), "island_threshold": Uniform(0.4, 0.6)}),
    StyleSpec(name="volcanic", uplift="cones", crater=True,
              procedural=ProceduralLook(wavelength_m=3000.0, ridge=0.5, warp=0.06, island=0.3, cone=1.0, sea_level=0.1),
              landscape=Landscape(relief_m=LogUniform(800, 3000), k_cells=LogUniform(0.5, 1.0),
                                  hillslope_m=LogUniform(60, 120), steps=Integers(120, 160),
                                  talus_deg=Uniform(32, 36), hydraulic_rain=LogUniform(0.1, 0.5)),
              extras={"cones": Integers(1, 3), "cone_radius": Uniform(0.15, 0.35), "crater_frac": Uniform(0.05, 0.12),
                      "sea_level": Uniform(0.0, 0.15)}),
    StyleSpec(name="glacial_valleys", uplift="range", glaciers=True,
              procedural=ProceduralLook(wavelength_m=3500.0, ridge=0.6, warp=0.10, exponent=2.5),
              landscape=Landscape(relief_m=LogUniform(1000, 2500), k_cells=LogUniform(0.7, 1.5),
                                  hillslope_m=LogUniform(70, 140), steps=Integers(130, 170),
                                  talus_deg=Uniform(36, 42), hydraulic_rain=LogUniform(0.1, 0.5)),
              extras={"trough_width_cells": Uniform(4.0, 9.0), "trough_wall_m": Uniform(150.0, 400.0),
                      "ela": Uniform(0.2, 0.45), "snow_line": Uniform(0.6, 0.85),
                      "ridge_anisotropy": Uniform(1.0, 2.0)}),
)}
STYLE_NAMES: tuple[str, ...] = tuple(STYLES)


def parameter_names() -> tuple[str, ...]:
    """Every style's parameter names (sorted): the corpus's params columns, NaN where a style has none."""
    names: set[str] = {"sea_level"}
    for spec in STYLES.values():
        names.update(spec.landscape.names(), spec.extras, *(g.names() for g in spec.groups()))
    return tuple(sorted(names))


def typical_relief_m(style_weights: dict[str, float]) -> float:
    """A style mix's typical relief in metres: its styles' (the middle of each corpus range) averaged in log space
    by weight. Dunes stand tens of metres high, alpine ranges a couple of kilometres."""
    known = {name: w for name, w in style_weights.items() if name in STYLES and w > 0}
    total = sum(known.values())
    if not total:
        raise ValueError(f"no known style in {sorted(style_weights)}")
    return math.exp(sum(w * math.log(STYLES[name].landscape.relief_m.typical) for name, w in known.items()) / total)
