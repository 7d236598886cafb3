"""MemoryNetwork, the world memory, with a tiny memory model trained by the real scripts: bounded size over 1,000
tile writes, sparse gated updates, the learned baseline, bit-exact persistence, memory as a pure function
of the edit log, order-independent tiles, and the memory actually reaching the denoiser."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from backend.data.datasets import downsample
from backend.data.walks import flatten_levels, tile_frame
from backend.diffusion.tiling import MultiDiffusion
from backend.memory.network import MemoryDenoiser
from backend.models.inference import read_metadata
from backend.models.shipped import BASE_FILE, MEMORY_FILE, SUPERRES_FILE
from backend.models.terrain import TerrainModel
from backend.server.paths import Roots
from backend.server.world_job import WorldTilesRequest
from backend.terrain import Heightfield
from backend.world.memory_state import STATE_NAME, WorldMemory
from backend.world.store import TileMeta, WorldStore
from backend.world.tiles import TileWorld, WorldSettings, create_world
from protocol.client import Client

torch.set_num_threads(1)  # 2 shared cores
SETTINGS = WorldSettings({"alpine": 1.0}, height_m=800.0, steps=2)


@pytest.fixture(scope="module")
def models(tiny_models, memory_model) -> tuple[TerrainModel, TerrainModel, TerrainModel]:
    return (TerrainModel.load(tiny_models / BASE_FILE), TerrainModel.load(tiny_models / SUPERRES_FILE),
            TerrainModel.load(memory_model))


def memory_world(path, models, seed: int = 11, levels: int = 1) -> TileWorld:
    """A world whose base stage reads the memory; base level only by default (the memory acts there)."""
    base, superres, memory = models
    create_world(path, seed, SETTINGS, base, superres, levels=levels, memory=memory)
    return TileWorld(path, base, superres, memory=memory)


def random_tile(rng: np.random.Generator, size: int) -> np.ndarray:
    return (rng.random((size, size)) * 800.0).astype(np.float32)


def test_training_script_ships_a_memory_base_model(memory_model, tiny_models) -> None:
    meta = read_metadata(memory_model)
    base = read_metadata(tiny_models / BASE_FILE)
    assert meta["config"]["kind"] == "base" and meta["denoiser"]["unet"]["memory_dim"] == meta["config"]["memory"]["dim"]
    assert meta["config"]["memory"]["tile_cells"] == base["config"]["resolution"]
    assert meta["config"]["run"]["steps_done"] == 20 and np.isfinite(meta["config"]["run"]["final_loss_mean_last_200_steps"])
    model = TerrainModel.load(memory_model)
    assert isinstance(model.denoiser, MemoryDenoiser)
    weights, base_weights = load_file(memory_model), load_file(tiny_models / BASE_FILE)
    assert all(torch.equal(weights[f"denoiser.{k}"], v) for k, v in base_weights.items())  # the base stays frozen
    assert any(bool(weights[k].abs().sum() > 0) for k in weights if ".proj_x." in k)  # the adapter left zero


def test_memory_size_stays_bounded_over_1000_tile_writes(models, tmp_path) -> None:
    memory_model = models[2]
    store = WorldStore.create(tmp_path / "w", 3, 129, 30.0)
    memory = WorldMemory(store, memory_model, 800.0)
    cfg = memory.cfg
    rng = np.random.default_rng(0)
    sizes = []
    for i in range(1000):  # a long walk east with excursions: hundreds of regions
        memory.write((i // 2, int(rng.integers(-3, 4))), random_tile(rng, 129), i)
        assert len(memory.regions) <= cfg.max_regions and memory.nbytes() <= cfg.bound_bytes()
        if i in (199, 999):
            memory.save()
            sizes.append((store.memory_dir / f"{STATE_NAME}.safetensors").stat().st_size)
    assert memory.writes == 1000 and len(memory.regions) == cfg.max_regions
    assert memory.nbytes() == cfg.bound_bytes()
    assert sizes[0] == sizes[1] < cfg.bound_bytes() + 4096  # the file stops growing once the banks are full


def test_a_write_moves_only_the_k_highest_gated_slots(models, tmp_path) -> None:
    store = WorldStore.create(tmp_path / "w", 3, 129, 30.0)
    memory = WorldMemory(store, models[2], 800.0)
    k = memory.cfg.update_slots
    before = memory.world.clone()
    memory.write((0, 0), random_tile(np.random.default_rng(1), 129), 0)
    changed = (memory.world != before).any(dim=1)
    assert int(changed.sum()) == k
    region = memory.regions[(0, 0)]
    assert int((region != memory.network.region_baseline.detach()).any(dim=1).sum()) == k
    world = memory.world.clone()
    memory.write((5, 0), random_tile(np.random.default_rng(2), 129), 1)  # another region: a new bank
    assert int((memory.world != world).any(dim=1).sum()) == k and torch.equal(memory.regions[(0, 0)], region)


def test_a_new_world_starts_from_the_learned_baseline_and_reloads_bit_exactly(models, tmp_path) -> None:
    world = memory_world(tmp_path / "a", models)
    network = world.memory.network
    assert torch.equal(world.memory.world, network.world_baseline.detach()) and not world.memory.regions
    world.commit((0, 0))
    world.commit((3, -1))
    assert world.memory.writes == 2 and not torch.equal(world.memory.world, network.world_baseline.detach())
    reopened = TileWorld(tmp_path / "a", *models[:2], memory=models[2])
    saved, loaded = world.memory.state(), reopened.memory.state()
    assert saved.keys() == loaded.keys() and all(np.array_equal(saved[k], loaded[k]) for k in saved)
    fresh = memory_world(tmp_path / "b", models)
    assert torch.equal(fresh.memory.world, network.world_baseline.detach()) and fresh.memory.writes == 0


def test_memory_is_a_function_of_the_edit_log(models, tmp_path) -> None:
    """Synced after every record or replayed at once from the log (tiles reconstructed by undoing later
    strokes), the memory comes out bit for bit the same."""
    world = memory_world(tmp_path / "w", models)
    store = world.store
    world.commit((0, 0))
    tile = world.tile((0, 0)).copy()
    w = 12
    for i, (r0, c0) in enumerate([(2, 2), (15, 18), (3, 4)]):  # overlapping brush strokes on the committed tile
        window = (r0, c0, r0 + w, c0 + w)
        before = tile[r0:r0 + w, c0:c0 + w].copy()
        tile[r0:r0 + w, c0:c0 + w] += 50.0 * (i + 1)
        store.append_edit("raise", (0, 0), window, {}, {"before": before, "after": tile[r0:r0 + w, c0:c0 + w]})
        store.put_tile((0, 0), Heightfield(tile.copy(), store.cell_size), TileMeta("edited", "brush"))
        assert world.memory.sync() == 1
    world.commit((1, 0))
    incremental = world.memory.state()
    (store.memory_dir / f"{STATE_NAME}.safetensors").unlink()
    replayed = WorldMemory.open(store, models[2], SETTINGS.height_m).state()
    assert incremental["applied_seq"] == 4 and incremental["writes"] == 5
    assert all(np.array_equal(incremental[k], replayed[k]) for k in incremental)


def test_memory_tiles_are_order_independent_and_read_the_memory(models, tmp_path) -> None:
    coords = [(0, 0), (1, 0), (-1, 1)]
    a_world, b_world = memory_world(tmp_path / "a", models), memory_world(tmp_path / "b", models)
    for w in (a_world, b_world):
        w.commit((4, 4))  # the same artist action first in both worlds
    a = {c: a_world.tile(c) for c in coords}
    b = {c: b_world.tile(c) for c in reversed(coords)}
    assert all(np.array_equal(a[c], b[c]) for c in coords)
    assert a_world.memory.writes == 1  # streamed tiles read the memory and never write it
    base, superres, memory = models
    unwritten = memory_world(tmp_path / "c", models)  # the same world without the artist's commit
    create_world(tmp_path / "d", 11, SETTINGS, base, superres, levels=1, memory=memory)
    null = TileWorld(tmp_path / "d", base, superres, memory=memory, read_memory=False)
    null.commit((4, 4))
    far = a_world.tile((2, 2))  # two tiles from the commit: no inpainting, no neighbour tokens, only the banks
    assert not np.array_equal(far, unwritten.tile((2, 2))) and not np.array_equal(far, null.tile((2, 2)))


def test_memory_worlds_need_the_memory_model_and_plain_worlds_ignore_it(models, tmp_path) -> None:
    base, superres, memory = models
    memory_world(tmp_path / "m", models)
    with pytest.raises(ValueError, match="made with the memory model"):
        TileWorld(tmp_path / "m", base, superres)
    create_world(tmp_path / "plain", 11, SETTINGS, base, superres)
    plain = TileWorld(tmp_path / "plain", base, superres, memory=memory)
    assert plain.memory is None and plain.base_stage is base
    with pytest.raises(ValueError, match="memory model must be"):
        create_world(tmp_path / "bad", 11, SETTINGS, base, superres, memory=base)


def test_multidiffusion_gives_each_window_the_memory_of_its_world_position() -> None:
    def mean_memory(x, sigma, cond):  # D(x) = mean of the window's memory tokens, everywhere in the window
        return cond.memory.mean(dim=(1, 2)).reshape(-1, 1, 1, 1).expand_as(x).clone()

    seen: list[tuple[int, int]] = []

    def by_position(origins):
        seen.extend(origins)
        return torch.tensor([[[float(r * 1000 + c)]] for r, c in origins])

    origin = (32, -64)
    out = MultiDiffusion(mean_memory, 32, 16, origin=origin, window_memory=by_position)(
        torch.zeros(2, 1, 64, 80), torch.ones(2))
    assert out.shape == (2, 1, 64, 80) and torch.equal(out[0], out[1])
    assert set(seen) == {(origin[0] + r, origin[1] + c) for r in (0, 16, 32) for c in (0, 16, 32, 48)}
    assert float(out[0, 0, 0, 0]) == 32 * 1000 - 64  # the corner cell is only in the corner window


@pytest.mark.parametrize("params,match", [
    ({"world": "x", "tiles": [[0, 0]], "commit": "yes", "create": {}}, "commit must be"),
    ({"world": "x", "tiles": [[0, 0]], "commit": True, "lod": 1, "create": {}}, "only at lod 0"),
    ({"world": "x", "tiles": [[0, 0]], "create": {"memory": 1}}, "create.memory"),
])
def test_bad_memory_params_are_refused_naming_the_field(params, match, tmp_path) -> None:
    with pytest.raises(ValueError, match=match):
        WorldTilesRequest.from_params(params, Roots([tmp_path]))


def test_world_tiles_job_makes_a_memory_world_and_commits_over_sockets(private_backend, tiny_models, memory_model,
                                                                       models, tmp_path) -> None:
    served = tmp_path / "models"
    served.mkdir()
    for name, src in ((BASE_FILE, tiny_models / BASE_FILE), (SUPERRES_FILE, tiny_models / SUPERRES_FILE),
                      (MEMORY_FILE, memory_model)):
        shutil.copy(src, served / name)
    backend = private_backend("--models-dir", str(served))
    client = Client(backend.address)
    create = {"seed": 11, "style": "alpine", "height_m": 800.0, "steps": 2, "memory": True}
    try:
        result = client.wait_result(client.submit("world_tiles", {"world": str(tmp_path / "w"), "tiles": [[0, 0], [1, 0]],
                                                                  "commit": True, "create": create}), timeout=300)
    finally:
        client.close()
    store = WorldStore.open(tmp_path / "w")
    assert [(e.kind, e.coords) for e in store.edits()] == [("commit", (0, 0)), ("commit", (1, 0))]
    state = store.load_memory(STATE_NAME)
    assert int(state["writes"]) == 2 and int(state["applied_seq"]) == 1
    local = memory_world(tmp_path / "local", models, levels=2)
    assert np.array_equal(result.arrays["heights"][0], local.tile((0, 0)))  # the same world whoever computes it
    local.commit((0, 0))
    assert np.array_equal(result.arrays["heights"][1], local.tile((1, 0)))


def test_walk_maps_are_in_the_frame_a_world_samples_in() -> None:
    """Tiles of a large map span [-1, 1] on average (as the base model's windows do in a world), the map only
    shifted and scaled as a whole, so tile-to-tile level and relief differences stay for the memory to learn."""
    rng = np.random.default_rng(0)
    large = torch.from_numpy(rng.random((2, 8, 8))).float().cumsum(-1)  # tiles of 4 cells at different levels
    framed = tile_frame(large, 4)
    tiles = framed.unfold(-2, 4, 4).unfold(-2, 4, 4)
    low, high = tiles.amin(dim=(-2, -1)), tiles.amax(dim=(-2, -1))
    assert torch.allclose((high - low).mean(dim=(-2, -1)), torch.full((2,), 2.0))
    assert torch.allclose(((high + low) / 2).mean(dim=(-2, -1)), torch.zeros(2), atol=1e-6)
    for m in range(2):  # affine per map: correlation 1 with the input
        assert np.corrcoef(large[m].flatten(), framed[m].flatten())[0, 1] > 0.9999
    assert framed[:, :, 4:].mean() > framed[:, :, :4].mean() + 0.5  # the eastern tiles stay higher


def test_walk_maps_vary_in_level_as_a_world_does() -> None:
    """A simulated map's tiles differ in level far more than a world's: flatten_levels scales the large-scale trend
    down until the tiles' mean levels vary by at most level_std, keeps each tile's own shape, leaves the maps in
    the tile frame, and leaves a map that is already that flat alone."""
    rng = np.random.default_rng(1)
    rows, cols = np.mgrid[0:32, 0:32] / 32
    bumps = torch.from_numpy(rng.normal(size=(32, 32))).float()
    steep = tile_frame((torch.from_numpy(6 * rows + 3 * cols).float() + bumps)[None], 8)
    flat = tile_frame(bumps[None], 8)
    assert downsample(steep, 8).flatten().std() > 0.5
    out = flatten_levels(torch.cat([steep, flat]), 8, level_std=0.2)
    spread = downsample(out, 8).flatten(1).std(dim=1)
    assert 0.15 < spread[0] <= 0.2 + 1e-4
    assert torch.equal(out[1], flat[0])  # already flatter than level_std
    tiles = out.unfold(-2, 8, 8).unfold(-2, 8, 8)
    assert torch.allclose((tiles.amax(dim=(-2, -1)) - tiles.amin(dim=(-2, -1))).mean(dim=(-2, -1)), torch.full((2,), 2.0))
    detail = lambda m: (m.unfold(-2, 8, 8).unfold(-2, 8, 8) - downsample(m, 8)[..., None, None]).flatten()
    assert np.corrcoef(detail(steep), detail(out[:1]))[0, 1] > 0.9  # each tile keeps its shape
