"""The learned erosion step: the adapter contract, its file, tiling without seams, gating and fallback."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pytest
import torch

from backend.models.erosion_surrogate import (MARGIN, ErosionSurrogate, GateConfig, SurrogateConfig, SurrogateNet,
                                              save_surrogate)
from backend.simulation.landscape import MULTIPLE_FLOW, StreamPower, erode
from backend.simulation.learned_steps import (MATURE_STEP, StreamPowerPhysics, ladder_plan, surrogate_inputs,
                                              windows)
from backend.simulation.surrogate_stage import doubtful_tiles, reference_plans, run_stage, split_horizon, trust_map
from backend.training.train_erosion_surrogate import fit_gate, gradient_error, mean_error, relative_error

TINY_UNET = {"dims": 2, "in_channels": 64, "out_channels": 16, "model_channels": 8, "channel_mult": [1, 2],
             "num_res_blocks": 1, "attn_levels": [], "mid_attn": False, "groups": 8, "emb_channels": 16,
             "n_sliders": 1, "norm": "none"}


def lumpy_slope(size: int = 128, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:size, 0:size]
    return 3.0 * rows + 1.0 * cols + 80.0 * rng.random((size, size))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[ErosionSurrogate, SurrogateNet]:
    """A tiny surrogate with random weights, written to safetensors and read back."""
    torch.manual_seed(0)
    config = SurrogateConfig(unet=TINY_UNET, gate=GateConfig(bias=0.0, margin=0.3))
    net = SurrogateNet(config)
    for p in net.parameters():  # the zero-initialised output and block ends: as after some training
        if not p.any():
            p.data.normal_(0.0, 0.05)
    path = tmp_path_factory.mktemp("surrogate") / "erosion_surrogate.safetensors"
    save_surrogate(path, net, config, {"test": True})
    return ErosionSurrogate.load(path), net.eval()


def test_physics_behind_the_interface_is_the_erosion_stage():
    z = lumpy_slope(64)
    physics = StreamPowerPhysics()
    process = StreamPower(steps=1, incision=1.0, diffusion=20.0)
    delta = physics.delta({"heights": z}, 30.0, process, 3)["heights"]
    np.testing.assert_allclose(z + delta, erode(z, 30.0, replace(process, steps=3)), rtol=0, atol=1e-9)
    assert physics.settled({"heights": z}, 30.0, process, 3, 32).shape == (2, 2)
    assert not physics.settled({"heights": z}, 30.0, process, 3, 32).any()
    assert physics.reads == physics.writes == ("heights",)


def test_ladder_plan_takes_the_longest_jumps():
    assert ladder_plan(10, (1, 2, 4, 8, 10)) == ([10], 0)
    assert ladder_plan(7, (1, 2, 4, 8, 10)) == ([4, 2, 1], 0)
    assert ladder_plan(23, (1, 2, 4, 8, 10)) == ([10, 10, 2, 1], 0)
    assert ladder_plan(13, (8, 10)) == ([10], 3)  # the rest by physics
    assert split_horizon(10, (1, 2, 4, 8, 10)) == (8, 2)
    assert split_horizon(8, (1, 2, 4, 8, 10)) == (4, 4)
    assert split_horizon(1, (1, 2, 4, 8, 10)) is None
    # the trust map's two compositions of K: both orders, or around the middle where the halves are equal
    assert reference_plans(10, (1, 2, 4, 8)) == [(8, 2), (2, 8)]
    assert reference_plans(8, (1, 2, 4)) == [(4, 4), (2, 4, 2)]
    assert reference_plans(4, (1, 2)) == [(2, 2), (1, 2, 1)]
    assert reference_plans(2, (1,)) == [(1, 1)]
    assert reference_plans(1, ()) == []


def test_weights_load_from_safetensors_with_their_config(tiny):
    surrogate, net = tiny
    assert surrogate.config.unet["model_channels"] == 8 and surrogate.config.fold == 4
    assert surrogate.config.gate.margin == 0.3
    for name, tensor in net.state_dict().items():
        torch.testing.assert_close(surrogate.net.state_dict()[name], tensor, rtol=0, atol=0)
    z = lumpy_slope(64)
    inputs, implicit, scale = surrogate_inputs(z, 30.0, MATURE_STEP, 4)
    with torch.no_grad():
        direct = net(torch.from_numpy(inputs)[None], torch.tensor([4]))[0, 0].numpy()
    delta = surrogate.delta({"heights": z}, 30.0, MATURE_STEP, 4)["heights"]
    np.testing.assert_allclose(delta[1:-1, 1:-1], (implicit + scale * direct)[1:-1, 1:-1], rtol=1e-5, atol=1e-4)
    border = np.ones_like(delta, dtype=bool)
    border[1:-1, 1:-1] = False
    np.testing.assert_array_equal(delta[border], implicit[border])  # the base level relaxes only along itself
    corners = np.s_[::z.shape[0] - 1, ::z.shape[1] - 1]
    assert not delta[corners].any()  # and its corners stay, as in the physics
    assert np.abs(delta - implicit).max() > 1e-3  # the network's part is not nothing


def test_surrogate_contract_supports_only_what_it_learned_and_is_deterministic(tiny):
    surrogate, _ = tiny
    assert surrogate.supports(MATURE_STEP, 30.0, 8)
    assert not surrogate.supports(MATURE_STEP, 30.0, 3)  # not on its ladder
    assert not surrogate.supports(MATURE_STEP, 7.5, 8)  # another cell size
    assert not surrogate.supports(replace(MATURE_STEP, diffusion=20.0), 30.0, 8)  # another process
    assert not surrogate.supports(replace(MATURE_STEP, routing=MULTIPLE_FLOW), 30.0, 8)  # another routing
    with pytest.raises(ValueError, match="trained for"):
        surrogate.delta({"heights": lumpy_slope(32)}, 7.5, MATURE_STEP, 8)
    z = lumpy_slope(96, seed=3)
    a = surrogate.delta({"heights": z}, 30.0, MATURE_STEP, 8)["heights"]
    b = surrogate.delta({"heights": z.copy()}, 30.0, MATURE_STEP, 8)["heights"]
    np.testing.assert_array_equal(a, b)
    assert a.shape == z.shape and np.isfinite(a).all()
    # linear in the height scale, like the physics (the flow graph does not change with it)
    np.testing.assert_allclose(surrogate.delta({"heights": 5.0 * z}, 30.0, MATURE_STEP, 8)["heights"], 5.0 * a,
                               rtol=1e-4, atol=1e-3)


def test_surrogate_result_stays_within_the_maps_range_as_the_physics_does(tiny):
    """Neither process makes a new extreme, so neither may the jump: a random network's raw output leaves the range
    (the test's own check that the case is hard), the step's result does not."""
    surrogate, _ = tiny
    rows, cols = np.mgrid[0:96, 0:96]
    z = np.maximum(0.0, 400.0 - 12.0 * np.hypot(rows - 48, cols - 48)) + lumpy_slope(96, seed=5) * (rows > 60)
    inputs, implicit, scale = surrogate_inputs(z, 30.0, MATURE_STEP, 8)
    raw = z + implicit + scale * surrogate.correction(inputs, 8)
    assert raw.min() < z.min() or raw.max() > z.max()
    result = z + surrogate.delta({"heights": z}, 30.0, MATURE_STEP, 8)["heights"]
    assert z.min() <= result.min() and result.max() <= z.max()
    physics = z + StreamPowerPhysics().delta({"heights": z}, 30.0, MATURE_STEP, 8)["heights"]
    assert z.min() <= physics.min() and physics.max() <= z.max()


def test_windows_cover_the_map_once():
    seen = np.zeros((300, 260), int)
    for outer, inner, core in windows((300, 260), 128, 32, 16):
        assert (outer[0].stop - outer[0].start) <= 128 and (outer[1].stop - outer[1].start) <= 128
        assert outer[0].start % 16 == 0 and outer[1].start % 16 == 0  # on the network's fold grid
        seen[core] += 1
    assert (seen == 1).all()


def test_windowed_network_has_no_seams(tiny):
    """Run in 4 x 4 windows with a margin, the network gives the whole map's output: tile borders vanish."""
    surrogate, _ = tiny
    inputs, _, _ = surrogate_inputs(lumpy_slope(256, seed=4), 30.0, MATURE_STEP, 8)
    whole = surrogate.correction(inputs, 8)
    tiled = surrogate.correction(inputs, 8, window=64 + 2 * MARGIN)  # cores of 64 cells: 4 x 4 windows
    assert np.abs(whole).max() > 1e-3
    np.testing.assert_allclose(tiled, whole, rtol=0, atol=1e-5 * np.abs(whole).max())  # float32 sums only


def test_gate_skips_flat_land_and_keeps_a_fresh_cliff():
    """The gate fitted on physics rollouts: a flat tile is settled, a tile with a fresh cliff is not."""
    maps = [lumpy_slope(64, seed=s) for s in range(3)]
    gate = fit_gate(maps, {"rollout_steps": 4, "starts": [0, 2], "gate_tolerance": 1e-3})
    surrogate = ErosionSurrogate(SurrogateNet(SurrogateConfig(unet=TINY_UNET)).eval(),
                                 SurrogateConfig(unet=TINY_UNET, gate=gate))
    z = np.zeros((128, 128))
    z[:, 96:] = 200.0  # a cliff in the right-hand tiles, flat land elsewhere
    z += np.random.default_rng(0).random(z.shape) * 1e-3
    settled = surrogate.settled({"heights": z}, 30.0, MATURE_STEP, 2, 32)
    assert settled[:, :2].all()  # flat: skipped
    assert not settled[:, 2:].any()  # the cliff's foot (column 95) and its top edge: not skipped


@dataclass(frozen=True)
class DriftingStep(StreamPowerPhysics):
    """Physics whose 2-step jump is wrong by 30 m in the top-left 32 x 32 cells: a constructed doubtful tile."""

    name: str = "drifting"

    @property
    def horizons(self) -> tuple[int, ...]:
        return (1, 2)

    def delta(self, fields, cell_size, process, horizon):
        out = super().delta(fields, cell_size, process, horizon)
        if horizon == 2:
            out["heights"][:32, :32] += 30.0
        return out

    @property
    def config(self):
        return SurrogateConfig(unet=TINY_UNET)


@dataclass(frozen=True)
class SteadyStep(DriftingStep):
    """A step exactly additive in its horizon (K steps = K x one step): one jump and two shorter ones agree."""

    name: str = "steady"

    def delta(self, fields, cell_size, process, horizon):
        rows, cols = np.mgrid[0:fields["heights"].shape[0], 0:fields["heights"].shape[1]]
        return {"heights": -0.5 * horizon * np.sin(rows / 7.0) * np.cos(cols / 5.0)}


@dataclass(frozen=True)
class BumpyStep(DriftingStep):
    """Physics whose 2-step jump is wrong by a smooth 30 m bump centred on the top-left 32 x 32 tile."""

    name: str = "bumpy"

    def delta(self, fields, cell_size, process, horizon):
        out = StreamPowerPhysics.delta(self, fields, cell_size, process, horizon)
        if horizon == 2:
            rows, cols = np.mgrid[0:out["heights"].shape[0], 0:out["heights"].shape[1]]
            out["heights"] += 30.0 * np.exp(-((rows - 16.0) ** 2 + (cols - 16.0) ** 2) / (2 * 12.0**2))
        return out


def test_trust_map_sends_the_doubtful_tile_back_to_physics():
    z = lumpy_slope(128, seed=5)
    process = replace(MATURE_STEP, steps=2)
    step = DriftingStep()
    jump = step.delta({"heights": z}, 30.0, MATURE_STEP, 2)["heights"]
    doubt = trust_map(z, jump, 30.0, MATURE_STEP, 2, step, 32)
    assert doubt[0, 0] > 25.0 and np.delete(doubt.ravel(), 0).max() < 5.0  # metres: physics' 2 vs 1 + 1 differ a little
    truth = erode(z, 30.0, process)
    # the budget: at most int(share x 16 tiles), the worst first; one tile takes a window, four the whole map
    for share, sent in ((1 / 16, 1), (0.3, 4)):
        gated, log = run_stage(z, 30.0, process, "gated", step, tile=32, fallback_share=share)
        assert log.fallback == sent and log.skipped == 0 and log.tiles == 16
        error = np.abs(gated - truth)[:32, :32]
        assert error[:24, :24].max() < 1.0 and error.mean() < 5.0  # physics, blended into the jump at the tile's edge
    surrogate_only, _ = run_stage(z, 30.0, process, "surrogate", step)
    assert np.abs(surrogate_only[:32, :32] - truth[:32, :32]).max() > 25.0


@dataclass(frozen=True)
class DriftingShortestStep(DriftingStep):
    """Learned at K = 2 only (the shortest jump on its ladder), wrong there by 30 m in the top-left 32 x 32 cells."""

    name: str = "drifting_shortest"

    @property
    def horizons(self) -> tuple[int, ...]:
        return (2,)

    def supports(self, process, cell_size, horizon):
        return horizon in self.horizons


def test_trust_map_of_the_shortest_jump_holds_it_to_the_physics():
    """The ladder's shortest jump has no shorter ones: its reference is the physics' own K steps, so the doubtful
    tile is found and every other tile scores exactly 0 (held to one implicit step of length K instead, the rest
    scored metres and ranked the jump's errors poorly)."""
    z = lumpy_slope(128, seed=5)
    step = DriftingShortestStep()
    jump = step.delta({"heights": z}, 30.0, MATURE_STEP, 2)["heights"]
    doubt = trust_map(z, jump, 30.0, MATURE_STEP, 2, step, 32)
    assert doubt[0, 0] > 25.0 and np.delete(doubt.ravel(), 0).max() < 1e-6, doubt
    gated, log = run_stage(z, 30.0, replace(MATURE_STEP, steps=2), "gated", step, tile=32, fallback_share=1 / 16)
    assert log.fallback == 1
    truth = erode(z, 30.0, replace(MATURE_STEP, steps=2))
    assert np.abs(gated - truth)[:24, :24].max() < 1.0


def test_physics_is_blended_in_without_a_step_at_the_tile_edge():
    """A smooth error of the jump: pasted, the physics tile would leave a step of metres at its edge; blended, none."""
    z = lumpy_slope(128, seed=5)
    process = replace(MATURE_STEP, steps=2)
    gated, log = run_stage(z, 30.0, process, "gated", BumpyStep(), tile=32, fallback_share=1 / 16)
    assert log.fallback == 1
    truth = erode(z, 30.0, process)
    jump_error = np.abs(z + BumpyStep().delta({"heights": z}, 30.0, MATURE_STEP, 2)["heights"] - truth)
    across = np.abs(np.diff(gated - truth, axis=1)[:32, 31])  # steps from column 31 to 32: the tile's edge
    assert jump_error[:32, 32].max() > 9.0  # what a pasted tile would step by there
    assert across.max() < 1.5
    assert np.abs(gated - truth)[:24, :24].max() < 1.0


def test_trusted_tiles_cost_no_physics():
    """Where one jump and two shorter ones agree, nothing is sent however large the budget."""
    z = lumpy_slope(128, seed=5)
    gated, log = run_stage(z, 30.0, replace(MATURE_STEP, steps=2), "gated", SteadyStep(), tile=32, fallback_share=0.3)
    assert log.fallback == 0
    np.testing.assert_array_equal(gated, z + SteadyStep().delta({"heights": z}, 30.0, MATURE_STEP, 2)["heights"])


def test_doubtful_tiles_take_the_largest_unsettled_disagreements_within_the_budget():
    trust = np.arange(16.0).reshape(4, 4)
    settled = np.zeros((4, 4), bool)
    settled[3, 3] = True  # the largest disagreement, but the gate skips it
    picked = doubtful_tiles(trust, settled, floor=0.0, share=0.25)
    assert sorted(trust[picked]) == [11.0, 12.0, 13.0, 14.0]
    assert sorted(trust[doubtful_tiles(trust, settled, floor=12.5, share=0.25)]) == [13.0, 14.0]
    assert not doubtful_tiles(trust, settled, floor=0.0, share=0.0).any()


def test_stage_engines(tiny):
    surrogate, _ = tiny
    z = lumpy_slope(64, seed=6)
    mature = replace(MATURE_STEP, steps=10)
    physics, log = run_stage(z, 30.0, mature, "physics", surrogate)
    np.testing.assert_array_equal(physics, erode(z, 30.0, mature))
    seen = []
    learned, log = run_stage(z, 30.0, mature, "surrogate", surrogate, lambda i, n, h: seen.append((i, n)))
    assert log.engine == "surrogate" and log.calls == [10] and seen == [(10, 10)]
    shipped = replace(surrogate, config=replace(surrogate.config, shipped=(8, 10)))  # as the benchmark ships
    thirteen, log = run_stage(z, 30.0, replace(MATURE_STEP, steps=13), "surrogate", shipped)
    assert log.calls == [10, 1, 1, 1] and np.isfinite(thirteen).all()
    light = StreamPower(steps=4, incision=1.0, diffusion=20.0)  # not what it learned: physics instead
    fallback, log = run_stage(z, 30.0, light, "surrogate", surrogate)
    assert log.engine == "physics"
    np.testing.assert_array_equal(fallback, erode(z, 30.0, light))
    assert run_stage(z, 30.0, mature, "auto", surrogate)[1].engine == "physics"  # small maps: physics
    with pytest.raises(ValueError, match="engine"):
        run_stage(z, 30.0, mature, "magic", surrogate)


def test_loss_terms_tell_a_grid_from_an_offset_of_the_same_size():
    """The training loss's gradient and mean terms: two errors with the same relative error of the change, a smooth
    offset and a cell-scale grid (what reroutes rivers), differ by far in their gradients and in their means."""
    rows, cols = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    change = torch.sin(rows / 10.0) + torch.cos(cols / 13.0)
    target = torch.stack([torch.zeros_like(change), change])[None]  # nothing missed
    offset = torch.full((1, 1, 64, 64), 0.1)
    grid = 0.1 * (-1.0) ** (rows + cols)[None, None]
    assert relative_error(offset, target) == pytest.approx(float(relative_error(grid, target)))
    assert gradient_error(offset, target) == 0.0
    assert gradient_error(grid, target) > 100 * relative_error(grid, target)
    # and its mean term, the other way round: the offset moves the map's level, the grid leaves it
    assert mean_error(offset, target) == pytest.approx(float(relative_error(offset, target)))
    assert mean_error(grid, target) == pytest.approx(0.0, abs=1e-12)
