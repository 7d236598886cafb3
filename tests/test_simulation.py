"""Flow routing against hand-computed grids, and mass conservation of every erosion process."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from backend.simulation import erosion as er
from backend.simulation.flow import (
    D8_OFFSETS,
    accumulate,
    boundary_mask,
    d8_receivers,
    drainage_area,
    fill_depressions,
    propagate_affine,
)
from backend.simulation.spectral_noise import fbm
from backend.simulation.styles import STYLE_NAMES, simulate_with_params, sample_params, sliders

# Interior drains to the outlet at (3, 3); see the D8 steps worked out in the comments.
HAND_Z = np.array([
    [9, 9, 9, 9, 9],
    [9, 5, 4, 3, 9],  # (1,1)->(1,2) drop 1; (1,2)->(2,3) drop 2/sqrt2; (1,3)->(2,3) drop 1
    [9, 6, 5, 2, 9],  # (2,1)->(1,2) drop 2/sqrt2; (2,2)->(2,3) drop 3; (2,3)->(3,3) drop 1
    [9, 9, 9, 1, 9],
], dtype=np.float64)
HAND_CELLS = np.array([
    [1, 1, 1, 1, 1],
    [1, 1, 3, 1, 1],
    [1, 1, 1, 6, 1],
    [1, 1, 1, 7, 1],
], dtype=np.float64)


def test_flow_accumulation_matches_hand_computed_grid():
    z = torch.from_numpy(HAND_Z)[None]
    receiver, slope, _ = d8_receivers(z, 10.0)
    assert receiver[0, 1, 1].item() == 1 * 5 + 2
    assert receiver[0, 2, 2].item() == 2 * 5 + 3
    assert slope[0, 2, 2].item() == pytest.approx(3 / 10.0)
    assert torch.equal(accumulate(receiver, torch.ones_like(z))[0], torch.from_numpy(HAND_CELLS))
    for fill in (False, True):
        area = drainage_area(z, cell_size=10.0, fill=fill)[0].numpy()
        np.testing.assert_allclose(area, HAND_CELLS * 100.0)


def test_fill_matches_hand_computed_pit():
    z = np.full((5, 5), 10.0)
    z[1:4, 1:4] = 5.0
    z[2, 2] = 1.0  # a pit whose spill point is the 5 m ring, draining out at (4, 2)
    z[4, 2] = 3.0
    filled = fill_depressions(torch.from_numpy(z), epsilon=0.0).numpy()
    expected = z.copy()
    expected[2, 2] = 5.0
    np.testing.assert_array_equal(filled, expected)


def test_filled_surface_has_no_interior_pits():
    rng = np.random.default_rng(3)
    z = torch.from_numpy(fbm((40, 50), rng, beta=1.5) * 100 + rng.standard_normal((40, 50)))[None]
    f = fill_depressions(z)[0]
    h, w = f.shape
    inner = f[1:-1, 1:-1]
    has_lower = torch.zeros_like(inner, dtype=torch.bool)
    for dr, dc in D8_OFFSETS:
        has_lower |= f[1 + dr:h - 1 + dr, 1 + dc:w - 1 + dc] < inner
    assert bool(has_lower.all())
    assert bool((f >= z[0]).all())
    bnd = boundary_mask(h, w)
    assert torch.equal(f[bnd], z[0][bnd])
    # Before filling this surface had pits, so the test exercises the filling.
    raw = z[0][1:-1, 1:-1]
    raw_lower = torch.zeros_like(raw, dtype=torch.bool)
    for dr, dc in D8_OFFSETS:
        raw_lower |= z[0][1 + dr:h - 1 + dr, 1 + dc:w - 1 + dc] < raw
    assert not bool(raw_lower.all())


def test_accumulation_conserves_area_and_affine_solve_matches_loop():
    rng = np.random.default_rng(1)
    z = fill_depressions(torch.from_numpy(rng.random((2, 12, 15))))
    receiver, _, _ = d8_receivers(z, 1.0)
    acc = accumulate(receiver, torch.ones_like(z))
    roots = receiver.reshape(2, -1) == torch.arange(12 * 15)
    outlet_total = torch.stack([acc[i].reshape(-1)[roots[i]].sum() for i in range(2)])
    assert torch.equal(outlet_total, torch.full((2,), 180.0, dtype=acc.dtype))  # every cell exits once
    a, b = torch.from_numpy(rng.random((2, 12, 15))), torch.from_numpy(rng.random((2, 12, 15)))
    got = propagate_affine(receiver, a, b)
    for i in range(2):
        rec, av, bv = receiver[i].reshape(-1), a[i].reshape(-1), b[i].reshape(-1)
        for cell in range(12 * 15):
            # Walk down to the root, then unwind x = a + b * x_next.
            path = [cell]
            while rec[path[-1]] != path[-1]:
                path.append(int(rec[path[-1]]))
            x = float(av[path[-1]])
            for c in reversed(path[:-1]):
                x = float(av[c]) + float(bv[c]) * x
            assert got[i].reshape(-1)[cell].item() == pytest.approx(x, rel=1e-12)


def _terrain(seed: int, shape=(2, 24, 28)) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy(np.stack([fbm(shape[1:], rng) * 200 for _ in range(shape[0])]))


def _check(budget: er.Budget, before: torch.Tensor, after: torch.Tensor, area: float) -> None:
    """eroded = deposited + out within 1e-9 relative, and the heights agree with the budget."""
    assert bool((budget.eroded > 0).all()), "process moved nothing: the test would be vacuous"
    tol = 1e-9 * budget.eroded.abs().max().item()
    assert budget.residual().abs().max().item() <= tol
    inner = ~boundary_mask(before.shape[-2], before.shape[-1])
    net = ((after - before) * inner).sum(dim=(-2, -1)) * area
    torch.testing.assert_close(net, budget.deposited - budget.eroded, atol=tol, rtol=0)


@pytest.mark.parametrize("process", ["fluvial", "diffusion", "thermal", "hydraulic", "glacial"])
def test_erosion_conserves_mass(process):
    z0 = _terrain(7)
    cs = 10.0
    if process == "fluvial":
        z1, budget, info = er.fluvial_step(z0, cs, er.FluvialParams(k=0.05))
        assert bool((info["lake"] > 0).any()), "fbm should have lakes that trap sediment"
        assert bool((budget.deposited > 0).all())
    elif process == "diffusion":
        z1, budget = er.diffusion_step(z0, cs, 500.0)
    elif process == "thermal":
        z1, budget, _ = er.thermal_erosion(z0, cs, er.ThermalParams(talus_deg=30.0, iterations=5))
    elif process == "hydraulic":
        z1, budget = er.hydraulic_erosion(z0, cs, er.HydraulicParams(iterations=20, rain=0.5))
        assert bool((budget.deposited > 0).all())
    else:
        _, _, info = er.fluvial_step(z0, cs, er.FluvialParams(k=0.05))
        z1, budget = er.glacial_carving(z0, cs, er.GlacialParams(min_area_cells=20, width_cells=3), info["area"])
    _check(budget, z0, z1, cs * cs)


def test_aeolian_conserves_sand():
    bed = torch.zeros(1, 16, 20, dtype=torch.float64)
    sand0 = torch.full_like(bed, 5.0)
    g = torch.Generator().manual_seed(0)
    sand1, budget = er.aeolian_transport(bed, sand0, 30.0, er.AeolianParams(iterations=10, slab=1.0), g)
    assert budget.eroded.item() > 0
    assert abs(budget.residual().item()) <= 1e-9 * budget.eroded.item()
    assert sand1.sum().item() == pytest.approx(sand0.sum().item(), rel=1e-12)
    assert bool((sand1 >= 0).all())


def test_styles_simulate_small_maps():
    for style in STYLE_NAMES:
        hf, params = simulate_with_params(style, seed=1, size=32, cell_size=30.0)
        assert hf.shape == (32, 32) and hf.style == style
        assert np.isfinite(hf.heights).all() and np.ptp(hf.heights) > 1.0
        for name, m in hf.masks.items():
            assert m.min() >= 0 and m.max() <= 1, name
        np.testing.assert_allclose(hf.splat.sum(-1), 1.0, atol=1e-5)
        assert all(isinstance(v, float) for v in params.values())
        assert all(0 <= params[f"slider_{k}"] <= 1 for k in ("roughness", "erosion_strength",
                                                               "elevation_range", "sea_level"))
    a, _ = simulate_with_params("alpine", 5, 32)
    b, _ = simulate_with_params("alpine", 5, 32)
    np.testing.assert_array_equal(a.heights, b.heights)
    with pytest.raises(ValueError, match="tundra"):
        simulate_with_params("tundra", 0, 32)
    assert set(sliders(sample_params("volcanic", np.random.default_rng(0)))) == {
        "roughness", "erosion_strength", "elevation_range", "sea_level"}


def _corner_outlet(h: int, w: int) -> torch.Tensor:
    out = torch.zeros(h, w, dtype=torch.bool)
    out[0, :3] = True
    return out


def test_outlets_drain_whole_map_through_them():
    """With an outlet mask, every cell's water leaves through the outlets, not the other edges."""
    z = _terrain(3, (1, 20, 22))
    outlets = _corner_outlet(20, 22)
    filled = fill_depressions(z, outlets=outlets)
    receiver, _, _ = d8_receivers(filled, 1.0, outlets)
    roots = receiver[0].reshape(-1) == torch.arange(20 * 22)
    assert torch.equal(roots.reshape(20, 22), outlets)
    area = accumulate(receiver, torch.ones_like(filled))[0]
    assert area[outlets].sum().item() == pytest.approx(20 * 22)


def test_fluvial_with_outlets_conserves_mass():
    z0 = _terrain(11)
    cs = 10.0
    z1, budget, _ = er.fluvial_step(z0, cs, er.FluvialParams(k=0.05), outlets=_corner_outlet(24, 28))
    _check(budget, z0, z1, cs * cs)
