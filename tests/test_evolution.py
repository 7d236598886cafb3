"""Uplift-driven landscape evolution (the corpus's fluvial stage): physics checks on small grids."""

import numpy as np

from backend.metrics.realism import pit_density
from backend.simulation.evolution import Evolution, evolve, implicit_diffusion


def test_implicit_diffusion_keeps_the_mass_and_smooths() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(0, 10, (40, 56))
    out = implicit_diffusion(z, 5000.0, 30.0)
    assert abs(out.mean() - z.mean()) < 1e-9  # no-flux edges: nothing leaves
    assert out.std() < 0.5 * z.std()
    # A large step is stable and heads to the flat steady state, not an oscillation.
    flat = implicit_diffusion(z, 1e9, 30.0)
    assert np.ptp(flat) < 1e-3 * np.ptp(z)


def _run(scale: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(3)
    size = 48
    initial = rng.normal(0, 1, (size, size)) * scale
    uplift = np.full((size, size), scale)
    outlets = np.zeros((size, size), bool)
    outlets[0, 20:24] = True
    return evolve(initial, uplift, outlets, 30.0, Evolution(steps=40, incision=1.0, hillslope_m=60.0)).heights


def test_evolved_land_drains_to_its_outlets_and_is_deterministic() -> None:
    z = _run()
    assert np.isfinite(z).all() and z.min() >= -1e-9 and z.max() > 1.0
    assert pit_density(z) == 0.0  # every cell drains: no closed pits left
    np.testing.assert_array_equal(z, _run())


def test_evolution_is_linear_in_the_uplift_scale() -> None:
    # n = 1 stream power and linear diffusion: the shape does not depend on the units (the corpus rescales).
    np.testing.assert_allclose(_run(3.0), 3.0 * _run(1.0), rtol=1e-6, atol=1e-9)
