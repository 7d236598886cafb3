"""Infinite world tiles through the real generation path (tiny learned models): order-independent bit for
bit, shared edges, coarse levels of detail, edits respected by neighbours generated later, clear errors
for bad params, and the world_tiles job over real ZeroMQ sockets."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from backend.models.shipped import BASE_FILE, SUPERRES_FILE
from backend.models.terrain import TerrainModel
from backend.server.paths import Roots
from backend.server.world_job import MAX_TILES, WorldTilesRequest
from backend.terrain import Heightfield
from backend.world.region import world_noise
from backend.world.store import TileMeta
from backend.metrics.realism import pit_density
from backend.simulation.landscape import erode
from backend.world.tiles import GENERATION_FILE, TileWorld, WorldSettings, create_world, seam_ratio, stitch
from protocol.client import BackendError, Client

torch.set_num_threads(1)  # 2 shared cores
SETTINGS = WorldSettings({"alpine": 1.0}, height_m=800.0, steps=2)


@pytest.fixture(scope="module")
def models(tiny_models) -> tuple[TerrainModel, TerrainModel]:
    return TerrainModel.load(tiny_models / BASE_FILE), TerrainModel.load(tiny_models / SUPERRES_FILE)


def new_world(path, models, seed: int = 11, settings: WorldSettings = SETTINGS) -> TileWorld:
    create_world(path, seed, settings, *models)
    return TileWorld(path, *models)


def test_world_noise_is_the_same_whichever_rectangle_asks() -> None:
    big = world_noise(5, (-70, 90), (-10, 150), 1)
    assert torch.equal(world_noise(5, (0, 20), (30, 95), 1), big[70:90, 40:105])
    assert not torch.equal(world_noise(6, (0, 20), (30, 95), 1), big[70:90, 40:105])


def test_tiles_requested_in_two_orders_are_bitwise_equal(models, tmp_path) -> None:
    coords = [(0, 0), (1, 0), (0, 1), (-1, 0), (-1, -1)]
    first = new_world(tmp_path / "a", models)
    a = {c: first.tile(c) for c in coords}
    second = new_world(tmp_path / "b", models)
    b = {c: second.tile(c) for c in reversed(coords)}
    for c in coords:
        assert a[c].shape == (first.store.tile_size,) * 2 and a[c].dtype == np.float32
        assert np.array_equal(a[c], b[c]), c
        assert np.array_equal(TileWorld(tmp_path / "a", *models).store.get_tile(c).field.heights, a[c])
    assert not np.array_equal(a[(0, 0)], a[(1, 0)])
    steepest = np.abs(np.diff(a[(0, 0)], axis=1)).max()
    for west, east in [((0, 0), (1, 0)), ((-1, 0), (0, 0))]:  # one block; two blocks (two base canvases)
        assert np.abs(a[west][:, -1] - a[east][:, 0]).max() < 0.05 * steepest


def test_tiles_of_one_block_share_its_base_canvas(models, tmp_path) -> None:
    world = new_world(tmp_path / "w", models)
    assert world.block_tiles == 2
    coarse = {c: world.tile(c, lod=1) for c in [(0, 0), (1, 0), (0, 1), (-1, 0)]}
    assert len(world.blocks) == 2  # blocks (0, 0) and (-1, 0)
    assert np.array_equal(coarse[(0, 0)][:, -1], coarse[(1, 0)][:, 0])  # one canvas: one edge, bit for bit
    assert np.array_equal(coarse[(0, 0)][-1, :], coarse[(0, 1)][0, :])
    across = np.abs(coarse[(-1, 0)][:, -1] - coarse[(0, 0)][:, 0])  # two canvases agree closely
    assert across.max() < 0.05 * np.abs(np.diff(coarse[(0, 0)], axis=1)).max()
    small = TileWorld(tmp_path / "w", *models, cache_blocks=1)
    for c in [(4, 4), (6, 4), (4, 4)]:
        small.tile(c, lod=1)
    assert len(small.blocks) == 1


def test_coarse_lod_is_the_coarse_level_and_not_stored(models, tmp_path) -> None:
    world = new_world(tmp_path / "w", models)
    far = world.tile((3, 2), lod=1)
    n = (world.store.tile_size - 1) // world.factor
    assert far.shape == (n + 1, n + 1) and not world.store.has_tile((3, 2))
    near = world.tile((3, 2))
    assert np.array_equal(world.tile((3, 2), lod=1), near[::world.factor, ::world.factor])
    with pytest.raises(ValueError, match="lod"):
        world.tile((0, 0), lod=2)


def test_edit_is_respected_by_neighbours_generated_later(models, tmp_path) -> None:
    shipped_steps = WorldSettings({"alpine": 1.0}, height_m=800.0)  # 2 steps are too few to blend an edit in
    plain = new_world(tmp_path / "plain", models, settings=shipped_steps)
    world = new_world(tmp_path / "edited", models, settings=shipped_steps)
    original = world.tile((0, 0))
    east_before = world.tile((1, 0), lod=1)  # from the block canvas cached before the edit
    edited = original.copy()
    edited[:, -40:] += 300.0  # a plateau raised along the east edge
    world.store.put_tile((0, 0), Heightfield(edited, world.store.cell_size), TileMeta("edited", "test", 0))
    world.cache.clear()
    east_after = world.tile((1, 0), lod=1)  # the edit is in the block: a fresh canvas, as a new process makes
    assert not np.array_equal(east_after, east_before)
    assert np.array_equal(east_after, TileWorld(tmp_path / "edited", *models).tile((1, 0), lod=1))
    east = world.tile((1, 0))
    assert np.array_equal(east[:, 0], edited[:, -1])  # the shared edge is the artist's, exactly
    unedited = plain.tile((1, 0))
    raised = (east - unedited).mean(axis=0)
    assert raised[1:4].mean() > 150 and abs(raised[-32:].mean()) < 20  # continues the raised land, then fades
    # No wall at the border: the step from the artist's edge into the new tile is like any other step (it was
    # 3.7 times the mean before the generated cells were leaned into the known ones; 1.2 with it).
    steps = np.abs(np.diff(np.concatenate([edited[:, :-1], east], axis=1), axis=1)).mean(axis=0)
    assert steps[edited.shape[1] - 1] < 1.6 * steps.mean()
    assert np.array_equal(world.tile((0, 0)), edited)  # never regenerated over


@pytest.mark.parametrize("stage", ["light", "smooth"])
def test_eroded_tiles_are_deterministic_finite_and_seamless(models, tmp_path, stage: str) -> None:
    """The erosion stage in an infinite world: a tile is the centre of the erosion of the uneroded world around
    it, so it stays a pure function of (seed, coords) and its borders read like interior lines."""
    light = replace(SETTINGS, erosion_stage=stage)
    world = new_world(tmp_path / "eroded", models, settings=light)
    grid = {(x, y): world.tile((x, y)) for y in range(2) for x in range(2)}
    assert np.array_equal(new_world(tmp_path / "again", models, settings=light).tile((1, 1)), grid[(1, 1)])
    assert all(np.isfinite(t).all() for t in grid.values())
    around = range(-1, 3)  # the uneroded world (cached) with a tile of context on every side
    plain = {(x, y): world._sampled((x, y), world.levels, None) for y in around for x in around}
    assert np.array_equal(plain[(0, 0)], new_world(tmp_path / "plain", models).tile((0, 0)))
    assert sum(pit_density(grid[c]) for c in grid) < sum(pit_density(plain[c]) for c in grid) / 2  # it did erode
    n = world.store.tile_size - 1
    # Tiling adds no seam: border steps over interior ones as in one erosion run over the whole 4 x 4 mosaic at
    # the same rows (the run itself reads 1.08 there, the uneroded world 0.96: the stage deepens the base
    # level's window lines a little, tiled or not), and within the 1 +- 0.1.
    whole = erode(stitch(plain, around, around).astype(np.float64), world.store.cell_size, world.erosion)
    tiled, one_run = (seam_ratio(z, n, world.factor) for z in (stitch(grid, range(2), range(2)),
                                                              whole[n:3 * n + 1, n:3 * n + 1]))
    assert abs(tiled / one_run - 1) < 0.05 and abs(tiled - 1) < 0.1, (tiled, one_run)
    assert np.array_equal(world.tile((1, 1), lod=1), grid[(1, 1)][::world.factor, ::world.factor])


def test_worlds_made_before_the_erosion_stage_open_without_it(models, tmp_path) -> None:
    world = new_world(tmp_path / "old", models)
    doc = (world.store.root / GENERATION_FILE)
    doc.write_text(doc.read_text().replace('"erosion_stage": "off",', ""))
    assert "erosion_stage" not in doc.read_text()
    reopened = TileWorld(tmp_path / "old", *models)
    assert reopened.settings.erosion_stage == "off" and reopened.erosion is None
    assert np.array_equal(reopened.tile((0, 0)), new_world(tmp_path / "new", models).tile((0, 0)))
    with pytest.raises(ValueError, match="erosion_stage"):
        WorldSettings({"alpine": 1.0}, erosion_stage="heavy")


@pytest.mark.parametrize("params,match", [
    ({"world": "nonexistent/w", "tiles": [[0, 0]]}, "no world at"),
    ({"world": "", "tiles": [[0, 0]]}, "world must be"),
    ({"world": "x", "tiles": [[0, "a"]], "create": {}}, "coordinate"),
    ({"world": "x", "tiles": [[0, 2**40]], "create": {}}, "within"),
    ({"world": "x", "tiles": [[0, 0, 0]], "create": {}}, "expected 2"),
    ({"world": "x", "tiles": [[0, 0]] * (MAX_TILES + 1), "create": {}}, "tiles must be"),
    ({"world": "x", "tiles": {}, "create": {}}, "tiles must be"),
    ({"world": "x", "tiles": [[0, 0]], "lod": -1, "create": {}}, "lod"),
    ({"world": "x", "tiles": [[0, 0]], "create": {"steps": 0}}, "steps"),
    ({"world": "x", "tiles": [[0, 0]], "create": {"colour": 1}}, "unknown create"),
    ({"world": "x", "tiles": [[0, 0]], "create": {"erosion_stage": "heavy"}}, "erosion_stage"),
    ({"world": "x", "tiles": [[0, 0]], "size": 3}, "unknown world_tiles"),
])
def test_bad_params_are_refused_naming_the_field(params, match, tmp_path) -> None:
    with pytest.raises(ValueError, match=match):
        WorldTilesRequest.from_params(params, Roots([tmp_path]))


def test_lod_beyond_the_worlds_levels_is_refused(models, tmp_path) -> None:
    new_world(tmp_path / "w", models)
    with pytest.raises(ValueError, match=r"lod must be an integer in \[0, 1\]"):
        WorldTilesRequest.from_params({"world": str(tmp_path / "w"), "tiles": [[0, 0]], "lod": 2}, Roots([tmp_path]))


def test_a_world_refuses_new_tiles_from_other_weights_but_keeps_its_stored_ones(models, tmp_path) -> None:
    world = new_world(tmp_path / "w", models)
    kept = world.tile((0, 0))
    retrained = replace(models[0], sha256="0" * 64)  # what a model update looks like to the world
    reopened = TileWorld(tmp_path / "w", retrained, models[1])
    assert reopened.other_models == ["base"]
    assert np.array_equal(reopened.tile((0, 0)), kept)
    with pytest.raises(ValueError, match="made with other base weights"):
        reopened.tile((1, 0))
    assert TileWorld(tmp_path / "w", *models).tile((1, 0)).shape == kept.shape  # the right weights go on


def test_world_tiles_job_over_sockets(learned_backend, models, tmp_path) -> None:
    client = Client(learned_backend.address)
    try:
        with pytest.raises(BackendError, match="no world at"):
            client.wait_result(client.submit("world_tiles", {"world": str(tmp_path / "none"), "tiles": [[0, 0]]}),
                               timeout=30)
        create = {"seed": 11, "style": "alpine", "height_m": 800.0, "steps": 2, "erosion_stage": "light"}
        params = {"world": str(tmp_path / "w"), "tiles": [[0, 0], [1, 0]], "create": create}
        result = client.wait_result(client.submit("world_tiles", params, target="explore"), timeout=300)
        far = client.wait_result(client.submit("world_tiles", {**params, "tiles": [[4, 4]], "lod": 1}), timeout=300)
    finally:
        client.close()
    heights, meta = result.arrays["heights"], result.content["meta"]
    assert heights.shape == (2, meta["samples"], meta["samples"]) and meta["tiles"] == [[0, 0], [1, 0]]
    local = new_world(tmp_path / "local", models, settings=replace(SETTINGS, erosion_stage="light"))
    assert np.array_equal(heights[0], local.tile((0, 0)))  # the same world whoever computes it
    assert TileWorld(tmp_path / "w", *models).store.tiles() == [(0, 0), (1, 0)]
    assert far.arrays["heights"].shape[1] == (meta["samples"] - 1) // local.factor + 1
    assert far.content["meta"]["cell_size"] == meta["cell_size"] * local.factor


def test_large_maps_are_a_region_of_the_world_with_progress(tiny_models) -> None:
    from backend.generators import DiffusionGenerator, GenerateRequest
    from backend.generators.learned import PREVIEW_MAX

    generator = DiffusionGenerator("cpu", tiny_models)
    size = 560  # model cells: over four of the tiny models' 128² maps across, so a region of the infinite world
    steps: list[tuple[int, int, tuple[int, ...]]] = []
    request = GenerateRequest({"alpine": 1.0}, resolution=size, size_m=generator.native_size_m(size), steps=1,
                              generator="diffusion", seed=3, erosion_stage="off")
    assert generator.extent(request).is_region
    field = generator.generate(request, lambda s, t, p: steps.append((s, t, p.shape)))
    assert field.heights.shape == (size, size) and np.isfinite(field.heights).all()
    assert [s for s, _, _ in steps] == list(range(1, steps[0][1] + 1))  # every step reported, once, in order
    assert steps[0][2][0] < PREVIEW_MAX and steps[-1][2] == (PREVIEW_MAX, PREVIEW_MAX)  # coarse level, then fine
