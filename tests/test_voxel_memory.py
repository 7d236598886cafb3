"""Voxel world memory with a tiny model trained by the real corpus and training scripts: step 0 is the shipped
model, walk items hold other chunks of the region (never the target), the weights load with their config, and
a world's memory is a function of its voxel edit log (bit-identical after a restart, changed by an edit, the
learned baseline when nothing is committed). Its slider readout (trained by its script on the same corpus) holds
out the memory's regions; a world with memory takes its estimate for the sliders left unset only, the same chunk
after a restart; and the shipped readout reads more caves from cave-rich committed chunks than from bare ground."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from backend.data.voxel_corpus import SPATIAL_CHANNELS, load_regions
from backend.data.voxel_walks import VoxelWalkDataset, held_out, region_channels, region_chunk
from backend.generators.voxel_chunks import VoxelChunkRequest, canvas_axes, generate_chunk, terrain_depth
from backend.generators.voxel_region import ChunkSettings, memory_source
from backend.memory.chunk_geometry import NEIGHBOURS_3D
from backend.memory.network import MemoryDenoiser, null_tokens
from backend.models.inference import read_metadata
from backend.models.voxel import VoxelModel, VoxelReadout
from backend.training.train_memory import memory_adapter
from backend.training.train_voxel_memory import voxel_memory_config
from backend.training.train_voxel_readout import served_sliders
from backend.voxels import channels as ch
from backend.voxels.chunk import CHUNK, ChunkKey, VoxelChunk, voxelise_terrain
from backend.world.voxel_memory import MemoryChunks, VoxelMemory
from backend.world.voxel_store import VoxelStore

sys.path.insert(0, str(Path(__file__).parent))
from voxel_helpers import STYLES, sloped_heights, tiny_voxel_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FOLDED = ch.N_CHANNELS * ch.FOLD**3  # the model's channels
SPATIAL_FOLDED = SPATIAL_CHANNELS * ch.FOLD**3
ORIGIN = (-128.0, 128.0)  # the test heightfield's north-west vertex (as in test_voxel_chunks)
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    """A voxel corpus of 2 styles x 3 regions from a small 2D corpus, a tiny voxel model with an attention block,
    and the voxel memory adapter trained on it for 4 steps (1 region a style held out)."""
    out = tmp_path_factory.mktemp("voxel_memory")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    run = [sys.executable, "-m"]
    subprocess.run(run + ["backend.data.corpus", "--out", str(out / "maps"), "--seed", "3", "--maps-per-style", "1",
                          "--map-size", "128", "--heldout-fraction", "0", "--styles", ",".join(STYLES)],
                   cwd=ROOT, env=env, check=True, capture_output=True, timeout=300)
    subprocess.run(run + ["backend.data.voxel_corpus", "--out", str(out / "voxels"), "--corpus", str(out / "maps"),
                          "--regions-per-style", "3"], cwd=ROOT, env=env, check=True, capture_output=True, timeout=300)
    base = tiny_voxel_model(out, mid_attn=True, styles=load_regions(out / "voxels").style_names)
    config = {"corpus": str(out / "voxels"), "init_from": str(base), "held_out_per_style": 1, "max_context": 3,
              "memory": {"dim": 16, "grid": 2, "encoder_channels": 8, "world_slots": 4, "region_slots": 4,
                         "update_slots": 2, "max_regions": 2},
              "train": {"steps": 4, "batch_size": 2, "lr": 0.01, "out_dir": str(out / "run"), "progress": False,
                        "ckpt_every": 0, "log_every": 2},
              "ship_to": str(out / "voxel_memory.safetensors")}
    (out / "memory.json").write_text(json.dumps(config))
    subprocess.run(run + ["backend.training.train_voxel_memory", str(out / "memory.json")], cwd=ROOT, env=env,
                   check=True, capture_output=True, timeout=300)
    readout = {"corpus": str(out / "voxels"), "memory_model": str(out / "voxel_memory.safetensors"),
               "ship_to": str(out / "voxel_readout.safetensors"), "reads_per_region": 2, "held_reads_per_region": 2,
               "steps": 5, "batch_size": 4, "min_gain": -100.0}  # 5 steps read nothing: serve every slider anyway
    (out / "readout.json").write_text(json.dumps(readout))
    subprocess.run(run + ["backend.training.train_voxel_readout", str(out / "readout.json")], cwd=ROOT, env=env,
                   check=True, capture_output=True, timeout=300)
    return {"base": base, "memory": out / "voxel_memory.safetensors", "corpus": out / "voxels", "folder": out,
            "readout": out / "voxel_readout.safetensors"}


def test_the_adapter_starts_as_the_shipped_model_and_trains_only_itself(trained) -> None:
    found = read_metadata(trained["base"])
    cfg = voxel_memory_config({"dim": 16, "grid": 2, "encoder_channels": 8, "world_slots": 4, "region_slots": 4,
                               "update_slots": 2})
    adapter = memory_adapter(str(trained["base"]), found["denoiser"], cfg, freeze_base=True, memory_emb=True)
    base = VoxelModel.load(trained["base"]).denoiser
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, FOLDED, 20, 20, 20, generator=g)
    cond = VoxelModel.load(trained["base"]).conditioning({"alpine": 1.0}, {}).map(lambda t: t.repeat(2, 1))
    cond = cond.replace(spatial=torch.randn(2, SPATIAL_FOLDED, 20, 20, 20, generator=g))
    memory = torch.randn(2, cfg.read_tokens, cfg.dim, generator=g)
    with torch.no_grad():
        assert torch.equal(adapter(x, torch.tensor([0.5, 2.0]), cond.replace(memory=memory)),
                           base(x, torch.tensor([0.5, 2.0]), cond))
    weights, base_weights = load_file(trained["memory"]), load_file(trained["base"])
    assert all(torch.equal(weights[f"denoiser.{k}"], v) for k, v in base_weights.items())  # the base stays frozen
    for part in (".proj_x.", ".memory_emb."):  # the adapter's zero-initialised projections moved
        assert any(bool(weights[k].abs().sum() > 0) for k in weights if part in k)


def test_weights_load_with_their_config_and_keep_the_held_out_regions_out(trained) -> None:
    model = VoxelModel.load(trained["memory"])
    assert isinstance(model.denoiser, MemoryDenoiser)
    cfg = model.denoiser.network.config
    assert (cfg.dims, cfg.channels, cfg.tile_cells, cfg.dim) == (3, FOLDED, 16, 16)
    unet = model.denoiser.denoiser.net.config
    assert unet.memory_dim == cfg.dim and unet.memory_emb
    regions = load_regions(trained["corpus"])
    train, held = held_out(regions, 1)
    assert model.meta["held_out_regions"] == held.tolist() and not set(train) & set(held)
    assert sorted(regions.style_names[s] for s in regions.style[held]) == sorted(STYLES)  # one a style
    assert model.meta["run"]["steps_done"] == 4 and model.meta["memory_corpus_regions"] == len(regions)


def test_walk_items_hold_other_chunks_of_the_region_never_the_target(trained) -> None:
    regions = load_regions(trained["corpus"])
    data = VoxelWalkDataset(regions, np.array([1, 4]), region_tiles=2, max_context=5, min_context=2)
    for i in (0, 9, 70, 101):
        x0, cond, extras = data[i]
        plan = data.plan(i)
        x, _ = region_channels(regions, plan.r, plan.k)
        assert plan.r == (1 if i < 64 else 4)
        box = tuple(slice(a, a + 40) for a in plan.lo)
        assert torch.equal(x0, ch.fold(x[(slice(None), *box)][None])[0])  # the window, turned as the context
        assert plan.target == tuple((a + 20) // CHUNK for a in plan.lo) and plan.target not in plan.walk
        assert 2 <= len(plan.walk) == int(extras["ctx_valid"].sum()) <= 5 and len(set(plan.walk)) == len(plan.walk)
        for j, chunk in enumerate(plan.walk):
            assert torch.equal(extras["context"][j], region_chunk(x, chunk))
        for j in np.flatnonzero(extras["nb_present"].numpy()):  # a present neighbour is the context chunk there
            delta = NEIGHBOURS_3D[j]
            assert plan.walk[int(extras["nb_index"][j])] == tuple(t + d for t, d in zip(plan.target, delta))
        assert int(extras["nb_present"].sum()) == sum(
            tuple(t + d for t, d in zip(plan.target, delta)) in plan.walk for delta in NEIGHBOURS_3D)


def request(key: ChunkKey, memory: torch.Tensor | None = None) -> VoxelChunkRequest:
    return VoxelChunkRequest(sloped_heights(), 8.0, ORIGIN, key, world_seed=5, style_weights={"alpine": 1.0},
                             memory=memory)


def depth(key: ChunkKey) -> np.ndarray:
    """The test terrain's depth at a chunk's cells."""
    return terrain_depth(request(key), *canvas_axes(key, 2.0, 0))


def carved(key: ChunkKey, cells: int) -> VoxelChunk:
    """The featureless ground of the test terrain with a cave box carved ``cells`` deep."""
    chunk = voxelise_terrain(sloped_heights(), 8.0, ORIGIN, key, 2.0, "grass")
    density = chunk.density.copy()
    density[2:2 + cells, 4:20, 4:20] = -1.0
    return VoxelChunk(key, chunk.voxel_size, density, chunk.material)


def world(store: VoxelStore, model: VoxelModel) -> VoxelMemory:
    return VoxelMemory.from_edits(model.denoiser, 5, store.committed(), depth)


def test_a_worlds_memory_is_a_function_of_its_edit_log(trained, tmp_path) -> None:
    model = VoxelModel.load(trained["memory"])
    store = VoxelStore(tmp_path / "world", 2.0)
    near, far = ChunkKey(0, 0, 0), ChunkKey(1, 0, 0)
    baseline = world(store, model).read(far, 4)  # nothing committed: the learned baseline

    seq = store.record_edit("carve", {near: None}, {near: (carved(near, 12), 0)})
    tokens = world(store, model).read(far, 4)
    assert torch.equal(tokens, world(store, model).read(far, 4))  # rebuilt from the log: the same, bit for bit
    assert not torch.equal(tokens, baseline)
    other = VoxelStore(tmp_path / "other", 2.0)
    other.record_edit("carve", {near: None}, {near: (carved(near, 4), 0)})
    assert not torch.equal(tokens, world(other, model).read(far, 4))  # another edit: another memory read nearby
    cfg = model.denoiser.network.config
    x = torch.randn(1, FOLDED, 20, 20, 20, generator=torch.Generator().manual_seed(1))
    cond = model.conditioning({"alpine": 1.0}, {}).replace(spatial=torch.zeros(1, SPATIAL_FOLDED, 20, 20, 20))
    with torch.no_grad():
        outputs = [model.denoiser(x, torch.tensor([1.0]), cond.replace(memory=m))
                   for m in (tokens, world(other, model).read(far, 4), null_tokens(cfg, 1))]
    assert not torch.equal(outputs[0], outputs[1]) and not torch.equal(outputs[0], outputs[2])  # it reaches the model

    chunk = generate_chunk(model, request(far, tokens))
    script = "\n".join([
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r})",
        "import numpy as np, torch",
        f"torch.set_num_threads({torch.get_num_threads()})",
        "from test_voxel_memory import request, world",
        "from backend.generators.voxel_chunks import generate_chunk",
        "from backend.models.voxel import VoxelModel",
        "from backend.voxels.chunk import ChunkKey",
        "from backend.world.voxel_store import VoxelStore",
        f"m = VoxelModel.load({str(trained['memory'])!r})",
        f"tokens = world(VoxelStore({str(tmp_path / 'world')!r}, 2.0), m).read(ChunkKey(1, 0, 0), 4)",
        f"np.save({str(tmp_path / 'c.npy')!r}, generate_chunk(m, request(ChunkKey(1, 0, 0), tokens)).density)"])
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True, timeout=180)
    assert np.load(tmp_path / "c.npy").tobytes() == chunk.density.tobytes()  # after a restart, bit for bit

    store.set_edit(seq, active=False)  # undone: nothing committed, the baseline again
    assert store.committed() == [] and torch.equal(world(store, model).read(far, 4), baseline)


def test_the_readout_reads_the_memory_it_was_trained_on_and_holds_out_its_regions(trained) -> None:
    model, readout = VoxelModel.load(trained["memory"]), VoxelReadout.load(trained["readout"])
    regions = load_regions(trained["corpus"])
    assert readout.meta["memory_model"]["sha256"] == model.sha256
    assert readout.meta["held_out_regions"] == model.meta["held_out_regions"]
    assert readout.meta["train_regions"] == len(regions) - len(model.meta["held_out_regions"])
    assert readout.meta["train_reads"] == 2 * readout.meta["train_regions"] and len(readout.meta["loss_log"]) == 2
    assert readout.readout.config.dim == model.denoiser.network.config.dim
    estimate = readout.readout.estimate(null_tokens(model.denoiser.network.config, 1))
    assert sorted(estimate) == sorted(model.meta["slider_names"]) and all(0 < v < 1 for v in estimate.values())


def test_the_readout_serves_only_the_sliders_it_reads_better_than_a_constant(trained) -> None:
    skill = {"cave_density": {"rmse": 0.23, "constant_rmse": 0.30}, "overhang": {"rmse": 0.366, "constant_rmse": 0.373}}
    assert served_sliders(skill, 0.1) == ("cave_density",) and served_sliders(skill, 0.0) == ("cave_density", "overhang")
    readout = VoxelReadout.load(trained["readout"]).readout
    tokens = null_tokens(VoxelModel.load(trained["memory"]).denoiser.network.config, 1)
    readout.config = replace(readout.config, served=("overhang",))
    assert list(readout.estimate(tokens)) == ["overhang"]


def settings(**sliders: float) -> ChunkSettings:
    """The test terrain (its north-west vertex at ORIGIN) with the artist's sliders."""
    return ChunkSettings(sloped_heights(), 8.0, 2.0, seed=5, style_weights=(("alpine", 1.0),), **sliders)


def test_a_world_with_memory_takes_the_readout_estimate_for_unset_sliders_only(trained, tmp_path) -> None:
    model, readout = VoxelModel.load(trained["memory"]), VoxelReadout.load(trained["readout"])
    store = VoxelStore(tmp_path / "world", 2.0)
    near, far = ChunkKey(0, 0, 0), ChunkKey(1, 0, 0)
    empty = MemoryChunks(world(store, model), readout.readout, 4)
    assert empty.condition(far, {"overhang": 0.25})[1] == {"overhang": 0.25}  # nothing committed: no estimate
    store.record_edit("carve", {near: None}, {near: (carved(near, 12), 0)})
    assert settings().depth(far).tobytes() == depth(far).tobytes()  # the memory is written over the same terrain
    tokens = world(store, model).read(far, 4)
    estimate = readout.readout.estimate(tokens)
    chunks = MemoryChunks(world(store, model), readout.readout, 4)
    read, sliders = chunks.condition(far, {"overhang": 0.25})
    assert torch.equal(read, tokens) and sliders == {**estimate, "overhang": 0.25}
    assert chunks.condition(ChunkKey(4, 0, 0), {"overhang": 0.25})[1] == {"overhang": 0.25}  # no committed chunk near
    assert estimate["overhang"] != 0.25  # the artist's slider wins over the estimate

    made = memory_source(model, readout, store, settings(overhang=0.25)).make(far, settings(overhang=0.25), 0, {})
    sliders = {"cave_density": estimate["cave_density"], "overhang": 0.25}
    expected = generate_chunk(model, VoxelChunkRequest(sloped_heights(), 8.0, ORIGIN, far, world_seed=5,
                                                       style_weights={"alpine": 1.0}, sliders=sliders, memory=tokens))
    assert made.density.tobytes() == expected.density.tobytes()
    unset = generate_chunk(model, VoxelChunkRequest(sloped_heights(), 8.0, ORIGIN, far, world_seed=5,
                                                    style_weights={"alpine": 1.0}, sliders={"overhang": 0.25},
                                                    memory=tokens))
    assert made.density.tobytes() != unset.density.tobytes()  # the estimate reaches the chunk

    both = settings(cave_density=0.75, overhang=0.25)
    set_by_artist = generate_chunk(model, VoxelChunkRequest(sloped_heights(), 8.0, ORIGIN, far, world_seed=5,
                                                            style_weights={"alpine": 1.0}, sliders=both.sliders,
                                                            memory=tokens))
    assert memory_source(model, readout, store, both).make(far, both, 0, {}).density.tobytes() == \
        set_by_artist.density.tobytes()  # both sliders set: the readout has no say

    script = "\n".join([
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r})",
        "import numpy as np, torch",
        f"torch.set_num_threads({torch.get_num_threads()})",
        "from test_voxel_memory import settings",
        "from backend.generators.voxel_region import memory_source",
        "from backend.models.voxel import VoxelModel, VoxelReadout",
        "from backend.voxels.chunk import ChunkKey",
        "from backend.world.voxel_store import VoxelStore",
        f"m, r = VoxelModel.load({str(trained['memory'])!r}), VoxelReadout.load({str(trained['readout'])!r})",
        "s = settings(overhang=0.25)",
        f"chunk = memory_source(m, r, VoxelStore({str(tmp_path / 'world')!r}, 2.0), s).make(ChunkKey(1, 0, 0), s, 0, {{}})",
        f"np.save({str(tmp_path / 'm.npy')!r}, chunk.density)"])
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True, timeout=180)
    assert np.load(tmp_path / "m.npy").tobytes() == made.density.tobytes()  # after a restart, bit for bit


def test_memory_source_refuses_a_model_without_memory_or_a_readout_of_other_weights(trained, tmp_path) -> None:
    model, readout = VoxelModel.load(trained["memory"]), VoxelReadout.load(trained["readout"])
    store = VoxelStore(tmp_path / "world", 2.0)
    with pytest.raises(ValueError, match="voxel_memory.safetensors"):
        memory_source(VoxelModel.load(trained["base"]), readout, store, settings())
    other = VoxelReadout(readout.readout, {**readout.meta, "memory_model": {"sha256": "0" * 64}}, readout.sha256)
    with pytest.raises(ValueError, match="other memory weights"):
        memory_source(model, other, store, settings())


SHIPPED = ROOT / "models"


@pytest.mark.skipif(not (SHIPPED / "voxel_readout.safetensors").is_file(), reason="needs the voxel memory models")
def test_the_shipped_readout_reads_more_caves_from_cave_rich_committed_chunks() -> None:
    """A chunk's neighbourhood committed with big caves carved in every chunk below the surface reads a higher
    cave density than the same neighbourhood committed as bare ground."""
    model, readout = VoxelModel.load(SHIPPED / "voxel_memory.safetensors"), VoxelReadout.load(
        SHIPPED / "voxel_readout.safetensors")
    target = ChunkKey(0, 0, -1)
    around = [ChunkKey(i, j, k) for k in (-1, 0) for j in (-1, 0, 1) for i in (-1, 0, 1)
              if ChunkKey(i, j, k) != target]
    estimates = {}
    for name, cells in (("rich", 16), ("poor", 0)):
        edits = [(seq, carved(key, cells)) for seq, key in enumerate(around)]
        memory = VoxelMemory.from_edits(model.denoiser, 5, edits, depth)
        estimates[name] = MemoryChunks(memory, readout.readout, int(model.meta["margin"])).condition(target, {})[1]
    assert estimates["rich"]["cave_density"] > estimates["poor"]["cave_density"] + 0.1, estimates
