"""Uplift-driven landscape evolution (the corpus's fluvial stage): physics checks on small grids."""

import numpy as np

from backend.metrics.realism import grid_alignment, pit_density
from backend.simulation.evolution import Evolution, evolve
from backend.simulation.hillslope import held, no_flux
from backend.simulation.landscape import SINGLE_FLOW, Routing


def test_implicit_diffusion_keeps_the_mass_and_smooths() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(0, 10, (40, 56))
    out = no_flux(z, 5000.0, 30.0)
    assert abs(out.mean() - z.mean()) < 1e-9  # no-flux edges: nothing leaves
    assert out.std() < 0.5 * z.std()
    # A large step is stable and heads to the flat steady state, not an oscillation.
    flat = no_flux(z, 1e9, 30.0)
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


def test_held_border_diffusion_solves_backward_euler_and_keeps_the_border() -> None:
    """The erosion stage's hillslope step: z_new - z = D lap(z_new) inside, the border relaxed only along
    itself with its corners kept, and a spike spreads alike along the axes and obliquely (no grid streaks,
    unlike ADI)."""
    rng = np.random.default_rng(1)
    z = rng.normal(0, 10, (33, 41))
    out = held(z, 1500.0, 30.0)
    lap = (out[:-2, 1:-1] + out[2:, 1:-1] + out[1:-1, :-2] + out[1:-1, 2:] - 4 * out[1:-1, 1:-1]) / 30.0 ** 2
    np.testing.assert_allclose(out[1:-1, 1:-1] - z[1:-1, 1:-1], 1500.0 * lap, atol=1e-9)
    corners = np.s_[::32, ::40]
    np.testing.assert_array_equal(out[corners], z[corners])
    top = out[0]
    np.testing.assert_allclose(top[1:-1] - z[0, 1:-1], 1500.0 * (top[:-2] + top[2:] - 2 * top[1:-1]) / 30.0 ** 2,
                               atol=1e-9)
    spike = np.zeros((65, 65))
    spike[32, 32] = 1.0
    spread = held(spike, 3000.0, 30.0)
    for along, oblique in ((spread[32, 37], spread[35, 36]), (spread[32, 42], spread[38, 40])):  # 5 and 10 cells
        assert abs(along - oblique) < 0.08 * along


def test_evolved_slopes_face_no_grid_direction() -> None:
    """Area gathered over multiple flow directions: the valleys follow the slopes, not the grid's axes and
    diagonals as they do when area runs along the steepest neighbour's paths (D8)."""
    rng = np.random.default_rng(5)
    size = 128
    initial = rng.normal(0, 1, (size, size))
    outlets = np.zeros((size, size), bool)
    outlets[0, :] = outlets[-1, :] = True

    def alignment(routing: Routing) -> float:
        run = Evolution(steps=60, incision=1.0, hillslope_m=60.0, routing=routing)
        return grid_alignment(evolve(initial, np.ones((size, size)), outlets, 30.0, run).heights, 30.0)

    shipped, steepest = alignment(Evolution.routing), alignment(SINGLE_FLOW)
    assert steepest > 0.1 and shipped < 0.5 * steepest, (shipped, steepest)
