"""Request validation and the procedural generator's invariants (no server involved)."""

from __future__ import annotations

import numpy as np
import pytest

from backend.generators import STYLES, Cancelled, GenerateRequest, ProceduralGenerator
from backend.generators.procedural import blend_styles


def make(**params) -> GenerateRequest:
    return GenerateRequest.from_params({"resolution": 48, "seed": 5, **params})


@pytest.mark.parametrize("params, fragment", [
    ({"resolution": 5000}, "resolution must be in [16, 4096], got 5000"),
    ({"resolution": True}, "resolution must be an integer"),
    ({"size_m": float("nan")}, "size_m must be a finite number"),
    ({"style": "alpine", "style_weights": {"alpine": 1}}, "either 'style' or 'style_weights'"),
    ({"style_weights": {"alpine": 0, "volcanic": 0}}, "must not all be zero"),
    ({"sliders": {"wetness": 0.5}}, "unknown slider(s) ['wetness']"),
    ({"steps": 0}, "steps must be in [1, 1000], got 0"),
])
def test_invalid_requests_name_the_value(params, fragment):
    with pytest.raises(ValueError) as info:
        GenerateRequest.from_params({"resolution": 48, **params})
    assert fragment in str(info.value)


def test_style_weights_are_normalised_and_blended():
    request = make(style_weights={"alpine": 3, "volcanic": 1})
    assert request.style_weights == {"alpine": 0.75, "volcanic": 0.25}
    blended = blend_styles(request.style_weights)
    assert blended.wavelength_m == pytest.approx(0.75 * STYLES["alpine"].wavelength_m + 0.25 * STYLES["volcanic"].wavelength_m)


@pytest.mark.parametrize("style", sorted(STYLES))
def test_every_style_spans_the_requested_relief(style):
    request = make(style=style, height_m=900.0, sliders={"sea_level": 0.25})
    hf = ProceduralGenerator().generate(request, lambda *a: None)
    assert hf.heights.shape == (48, 48) and hf.heights.dtype == np.float32
    assert hf.cell_size == pytest.approx(request.size_m / 47)
    assert hf.heights.max() == pytest.approx(0.75 * 900.0, rel=1e-4)  # sea level: a quarter of the range under 0 m
    assert hf.heights.min() == pytest.approx(-0.25 * 900.0, rel=1e-4)


def test_seeds_are_deterministic_and_distinct():
    generator = ProceduralGenerator()
    a, b, c = (generator.generate(make(seed=s), lambda *a: None).heights for s in (1, 1, 2))
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).mean() > 10.0


def test_steps_stream_coarse_to_fine_and_cancel_stops_between_steps():
    calls: list[int] = []

    def on_step(step: int, total: int, preview: np.ndarray | None) -> None:
        calls.append(step)
        if step == 3:
            raise Cancelled("enough")

    with pytest.raises(Cancelled):
        ProceduralGenerator().generate(make(resolution=256), on_step)
    assert calls == [1, 2, 3]
