"""The plausibility energy and its annealed sampler: exact on a grid small enough to enumerate."""

import itertools

import numpy as np

from backend.voxels import energy as en
from backend.voxels.refine import AnnealSchedule, anneal, delete_floating, metropolis_sweep, model_unary


def enumerated(shape: tuple[int, int, int], n_classes: int, unary: np.ndarray, beta: float) -> np.ndarray:
    """Every state of the grid (rows) and its probability under exp(-beta (E + U))."""
    states = np.array(list(itertools.product(range(n_classes), repeat=int(np.prod(shape)))), np.uint8)
    grids = states.reshape(-1, *shape)
    cost = en.local_energy(grids) + np.take_along_axis(
        np.broadcast_to(unary.reshape(1, -1, n_classes), (len(states), states.shape[1], n_classes)),
        states[..., None].astype(np.int64), -1)[..., 0].sum(1)
    p = np.exp(-beta * (cost - cost.min()))
    return p / p.sum()


def test_sampler_matches_the_enumerated_distribution() -> None:
    shape, n_classes, beta = (2, 1, 3), 3, 1.0  # air, solid, water: 729 states
    rng = np.random.default_rng(0)
    unary = rng.uniform(0, 1.5, (*shape, n_classes))
    target = enumerated(shape, n_classes, unary, beta)
    chains = rng.integers(0, n_classes, (4000, *shape)).astype(np.uint8)
    sites = np.argwhere(np.ones(shape, bool))
    for _ in range(20):  # burn-in
        metropolis_sweep(chains, unary, beta, sites, rng, n_classes=n_classes)
    counts = np.zeros(len(target))
    powers = n_classes ** np.arange(chains[0].size)[::-1]
    for _ in range(60):
        metropolis_sweep(chains, unary, beta, sites, rng, n_classes=n_classes)
        counts += np.bincount(chains.reshape(len(chains), -1).astype(np.int64) @ powers, minlength=len(target))
    tv = 0.5 * np.abs(counts / counts.sum() - target).sum()
    assert tv <= 0.02, tv
    # It is the energy that shapes the samples: at a higher beta the implausible states thin out.
    implausible = en.local_energy(np.array(list(itertools.product(range(n_classes), repeat=6)),
                                           np.uint8).reshape(-1, *shape)) > 0
    assert (counts / counts.sum())[implausible].sum() < 0.8 * implausible.mean()


def test_energy_falls_along_the_schedule() -> None:
    rng = np.random.default_rng(1)
    classes = np.where(rng.random((12, 10, 10)) < 0.3, en.SOLID, en.AIR).astype(np.uint8)
    classes[:4] = en.SOLID  # ground under speckles of rock and water: ledges and spills everywhere
    classes[(rng.random(classes.shape) < 0.05) & (classes == en.AIR)] = en.WATER
    drawn = np.where(classes == en.SOLID, 0.5, -0.5)
    unary = model_unary(drawn, np.where(classes == en.WATER, 1.0, 0.0))
    refined, trace = anneal(classes, unary, np.random.default_rng(2), AnnealSchedule(stages=6, sweeps=2, unary_weight=0.25))
    assert trace[-1] < 0.3 * trace[0], trace
    assert all(b <= a * 1.05 for a, b in zip(trace, trace[1:])), trace
    # Most cells keep what the model drew: the unary term holds the sample near it.
    assert (refined == classes).mean() > 0.7


def test_floating_rock_is_deleted_and_anchored_rock_kept() -> None:
    classes = np.zeros((8, 8, 8), np.uint8)
    classes[:2] = en.SOLID  # ground
    classes[5, 3:5, 3:5] = en.SOLID  # a floating block
    classes[2:7, 0, 0] = en.SOLID  # a pillar on the ground
    out, removed = delete_floating(classes, anchors=("bottom",))
    assert removed == 4
    assert (out[5, 3:5, 3:5] == en.AIR).all() and (out[:2] == en.SOLID).all() and (out[2:7, 0, 0] == en.SOLID).all()
    assert en.energy(out, anchors=("bottom",)) < en.energy(classes, anchors=("bottom",))


def test_energy_terms_flag_what_they_should() -> None:
    classes = np.zeros((6, 3, 3), np.uint8)
    classes[0] = en.SOLID
    classes[4, 1, 1] = en.SOLID  # one-cell ledge over air: thin
    classes[1, 1, 1] = en.WATER  # water on the ground with air beside: unheld
    classes[1, 0, 0] = en.LAVA
    classes[1, 0, 1] = en.WATER  # touching the lava
    found = en.violations(classes)
    assert found["thin_overhang"][4, 1, 1] and found["thin_overhang"].sum() == 1
    assert found["unheld_water"][1, 1, 1]
    assert found["lava_water"][1, 0, 0] and found["lava_water"].sum() == 1
    assert found["floating"][4, 1, 1]
