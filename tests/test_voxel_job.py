"""The ``voxels`` and ``voxel_edit`` jobs against a live backend: meshes stream chunk by chunk, edits are stored
in the world folder and come back in later jobs, bad or huge requests are refused clearly, cancel stops it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backend.voxels.chunk import CHUNK, MATERIAL, ChunkKey, VoxelChunk, voxelise_terrain
from backend.world.voxel_store import VoxelStore
from protocol import ErrorCode
from protocol.client import BackendError, Client
from conftest import terrain_models_only

CELL = 8.0


def _heights() -> np.ndarray:
    r, c = np.mgrid[0:65, 0:65].astype(np.float32)
    return (70.0 + 12.0 * np.sin(c / 9.0) * np.cos(r / 7.0)).astype(np.float32)


def _params(**extra) -> dict:
    return {"voxel_size": 2.0, "mesh": "smooth", "cell_size": CELL, "chunk_min": [-1, -1, 0],
            "chunk_count": [2, 2, 2], "source": "featureless", **extra}


def _run(client: Client, job: str, params: dict, timeout: float = 60.0) -> tuple[dict, list]:
    previews = []
    if job == "voxel_edit":  # an edit's chunks follow from its stroke
        params = {k: v for k, v in params.items() if k not in ("chunk_min", "chunk_count")}
    job_id = client.submit(job, params, "", timeout=10, arrays={"heights": _heights()})
    result = client.wait_result(job_id, timeout=timeout,
                                on_message=lambda m: previews.append(m) if m.kind == "preview" else None)
    return result.content["meta"], previews


def test_region_streams_one_mesh_per_chunk(client):
    meta, previews = _run(client, "voxels", _params())
    assert [p.content["meta"]["chunk"] for p in previews] == meta["chunks"]
    assert len(previews) == 8 and meta["chunks"][0][2] == 1  # the top layer first
    assert sum(len(p.arrays["faces"]) for p in previews) == meta["faces"] > 0
    for p in previews:
        v, f, m = p.arrays["vertices"], p.arrays["faces"], p.arrays["material"]
        assert v.dtype == np.float32 and f.dtype == np.int32 and m.dtype == np.uint8 and len(m) == len(v)
        if len(f):
            assert f.max() < len(v) and (m > 0).all()
            i, j, k = p.content["meta"]["chunk"]
            side = CHUNK * 2.0
            assert (v[:, 0] >= i * side).all() and (v[:, 0] <= (i + 1) * side + 1.0).all()
    blocky, previews = _run(client, "voxels", _params(mesh="blocky"))
    assert all(p.arrays["faces"].shape[1] == 4 for p in previews if len(p.arrays["faces"]))
    assert all(len(p.arrays["material"]) == len(p.arrays["faces"]) for p in previews)


def test_the_default_source_draws_chunks_with_the_shipped_voxel_model(client, tmp_path):
    """A region without a named source is drawn by the learned generator: kept in the world as made (its chunks
    depend on their neighbours), so asking again shows the same meshes, and the ground differs from the plain one."""
    params = {k: v for k, v in _params(world=str(tmp_path / "w"), chunk_count=[2, 1, 1], cave_density=1.0).items()
              if k != "source"}
    meta, previews = _run(client, "voxels", params, timeout=120)
    assert meta["source"] == "learned" and len(previews) == 2
    assert len(list((tmp_path / "w" / "voxels").rglob("*.safetensors"))) >= 2  # kept as made
    again, repeat = _run(client, "voxels", params, timeout=120)
    for a, b in zip(previews, repeat):
        np.testing.assert_array_equal(a.arrays["vertices"], b.arrays["vertices"])
    plain, flat = _run(client, "voxels", {**params, "source": "featureless", "world": str(tmp_path / "plain")})
    assert any(len(a.arrays["vertices"]) != len(b.arrays["vertices"]) or
               not np.array_equal(a.arrays["vertices"], b.arrays["vertices"]) for a, b in zip(previews, flat))


def test_carve_is_stored_and_reopened(client, tmp_path):
    world = tmp_path / "scene.world"
    base, before = _run(client, "voxels", _params(world=str(world)))
    stroke = {"op": "carve", "points": [[-40.0, 20.0, 50.0], [30.0, -10.0, 40.0]], "radius": 5.0}
    meta, previews = _run(client, "voxel_edit", _params(world=str(world), edit=stroke))
    assert meta["edited"] and {tuple(c) for c in meta["edited"]} <= {tuple(c) for c in meta["chunks"]}
    stored = sorted(p.name for p in (world / "voxels" / "2m").glob("*.safetensors"))
    assert len(stored) == len(meta["edited"])
    chunk, variant = VoxelStore(world, 2.0).get(_key(meta["edited"][0]))
    assert variant == 0 and (chunk.material == MATERIAL["air"]).sum() > 0
    # a later region job over the same world (as after reopening the .blend) shows the tunnel
    after, again = _run(client, "voxels", _params(world=str(world)))
    assert after["faces"] > base["faces"]
    same = {tuple(p.content["meta"]["chunk"]): p for p in previews}
    for p in again:
        if tuple(p.content["meta"]["chunk"]) in same:
            np.testing.assert_array_equal(p.arrays["vertices"], same[tuple(p.content["meta"]["chunk"])].arrays["vertices"])
    # regenerate with the featureless source heals it: the region's meshes are the first ones again
    heal = dict(stroke, op="regenerate", radius=9.0)
    _run(client, "voxel_edit", _params(world=str(world), edit=heal))
    healed, last = _run(client, "voxels", _params(world=str(world)))
    assert healed["faces"] == base["faces"]
    for p, q in zip(before, last):
        np.testing.assert_allclose(p.arrays["vertices"], q.arrays["vertices"], atol=1e-4)


def test_voxel_edits_are_undone_and_redone(client, tmp_path):
    """Two stored edits; undoing the newest puts its chunks back as the older edit left them, undoing both
    leaves the world without stored chunks (as before them) and shows the first region again, redoing both
    shows the carved and filled caves again; repeated requests change nothing; unknown edits are refused."""
    world = str(tmp_path / "w")
    base, first = _run(client, "voxels", _params(world=world))
    carve = {"op": "carve", "points": [[-40.0, 20.0, 50.0], [30.0, -10.0, 40.0]], "radius": 5.0}
    carved, _ = _run(client, "voxel_edit", _params(world=world, edit=carve))
    store = VoxelStore(tmp_path / "w", 2.0)
    after_carve = {tuple(c): store.get(_key(c))[0] for c in carved["edited"]}
    fill = {"op": "fill", "points": [[0.0, 5.0, 45.0]], "radius": 3.0, "material": "ore_gold"}
    filled, _ = _run(client, "voxel_edit", _params(world=world, edit=fill))
    assert (carved["edit_seq"], filled["edit_seq"]) == (1, 2)
    assert any((store.get(_key(c))[0].material != chunk.material).any() for c, chunk in after_carve.items())
    undo = {k: v for k, v in _params(world=world).items() if k not in ("chunk_min", "chunk_count")}
    meta, previews = _run(client, "voxel_undo", {**undo, "undo": [2]})
    assert meta["undone"] == [2] and meta["redone"] == [] and len(previews) == len(meta["chunks"]) > 0
    for c, chunk in after_carve.items():
        np.testing.assert_array_equal(store.get(_key(c))[0].material, chunk.material)
    meta, _ = _run(client, "voxel_undo", {**undo, "undo": [2, 1]})
    assert meta["undone"] == [1] and not list((tmp_path / "w" / "voxels" / "2m").glob("*.safetensors"))
    again, shown = _run(client, "voxels", _params(world=world))
    assert again["faces"] == base["faces"]
    for p, q in zip(first, shown):
        np.testing.assert_array_equal(p.arrays["vertices"], q.arrays["vertices"])
    meta, _ = _run(client, "voxel_undo", {**undo, "redo": [1, 2]})
    assert meta["redone"] == [1, 2]
    assert (store.get(_key(filled["edited"][0]))[0].material == MATERIAL["ore_gold"]).any()
    meta, _ = _run(client, "voxel_undo", {**undo, "redo": [2]})
    assert meta["redone"] == []
    with pytest.raises(BackendError) as info:
        client.submit("voxel_undo", {**undo, "undo": [7]}, "", timeout=10, arrays={"heights": _heights()})
    assert info.value.code == ErrorCode.BAD_PARAMS.value and "no voxel edits [7]" in str(info.value)


def _key(c):
    from backend.voxels.chunk import ChunkKey
    return ChunkKey(*c)


def test_export_writes_vox_and_glb_inside_roots(client, tmp_path):
    meta, _ = _run(client, "voxels", _params(export={"out_dir": str(tmp_path / "out"), "name": "cave"}))
    names = sorted(Path(f).name for f in meta["files"])
    assert names == ["cave.glb", "cave.vox", "cave_voxels.json"]
    assert (tmp_path / "out" / "cave.vox").read_bytes()[:4] == b"VOX "


@pytest.mark.parametrize("bad,code,words", [
    ({"chunk_count": [8, 8, 2]}, ErrorCode.BAD_PARAMS, "at most 64 chunks"),
    ({"chunk_count": [9, 1, 1]}, ErrorCode.BAD_PARAMS, "chunk_count"),
    ({"voxel_size": 3.0}, ErrorCode.BAD_PARAMS, "voxel_size"),
    ({"mesh": "lego"}, ErrorCode.BAD_PARAMS, "mesh"),
    ({"source": "dreams"}, ErrorCode.BAD_PARAMS, "chunk source"),
    ({"chunk_min": [0, 0]}, ErrorCode.BAD_PARAMS, "chunk_min"),
    ({"cave_density": 2}, ErrorCode.BAD_PARAMS, "cave_density"),
    ({"passages": -0.1}, ErrorCode.BAD_PARAMS, "passages"),
    ({"world": "/etc"}, ErrorCode.FORBIDDEN, "outside"),
    ({"export": {"out_dir": "/etc", "name": "x"}}, ErrorCode.FORBIDDEN, "outside"),
    ({"export": {"out_dir": "/tmp/x", "name": "../up"}}, ErrorCode.BAD_PARAMS, "export.name"),
    ({"surprise": 1}, ErrorCode.BAD_PARAMS, "unknown voxels params"),
    ({"style_weights": {"alpine": -1}}, ErrorCode.BAD_PARAMS, "style_weights"),
    ({"memory": "yes"}, ErrorCode.BAD_PARAMS, "memory must be true or false"),
    ({"memory": True}, ErrorCode.BAD_PARAMS, "memory needs the learned source and a world folder"),
])
def test_bad_region_requests_are_refused(client, bad, code, words):
    with pytest.raises(BackendError) as info:
        client.submit("voxels", _params(**bad), "", timeout=10, arrays={"heights": _heights()})
    assert info.value.code == code.value and words in str(info.value)


def test_bad_edits_are_refused(client, tmp_path):
    world = str(tmp_path / "w")
    for params, words in (
            (_params(edit={"op": "carve", "points": [[0, 0, 0]], "radius": 2}), "needs a world"),
            (_params(world=world, edit={"op": "carve", "points": [[0, 0, 0], [2000, 0, 0]], "radius": 60}),
             "at most 64"),
            (_params(world=world, edit={"op": "melt", "points": [[0, 0, 0]], "radius": 2}), "edit.op")):
        params = {k: v for k, v in params.items() if k not in ("chunk_min", "chunk_count")}
        with pytest.raises(BackendError) as info:
            client.submit("voxel_edit", params, "", timeout=10, arrays={"heights": _heights()})
        assert info.value.code == ErrorCode.BAD_PARAMS.value and words in str(info.value)
    with pytest.raises(BackendError, match="heights"):
        client.submit("voxels", _params(), "", timeout=10)


def test_cancel_stops_a_region(client):
    job_id = client.submit("voxels", _params(chunk_count=[4, 4, 4], voxel_size=1.0), "", timeout=10,
                           arrays={"heights": _heights()})
    client.cancel(job_id)
    with pytest.raises(BackendError) as info:
        client.wait_result(job_id, timeout=60)
    assert info.value.code == ErrorCode.CANCELLED.value


def test_a_kept_source_makes_only_the_region_and_closes_seams_later(tmp_path, monkeypatch):
    """With an outpainting source (kept as made): a region costs one source call per chunk (its rim is read as
    the bare ground), and the next region beside it remeshes the first one's border chunk, so the seam closes."""
    from test_voxel_meshing import _open_edges

    from backend.generators import voxel_region
    from backend.server.paths import Roots
    from backend.server.voxel_job import VoxelRequest, run_voxels

    calls = []

    def outpainting(key, settings, variant, neighbours):
        calls.append(key)
        chunk = voxel_region.featureless_chunk(key, settings, variant, neighbours)
        r = np.arange(CHUNK)[None, :, None]
        hole = (np.abs(r - 16) < 5) & (np.abs(np.arange(CHUNK)[:, None, None] - 8) < 4)  # a tunnel along x
        chunk.density[np.broadcast_to(hole, chunk.density.shape)] = -1.0
        return type(chunk)(key, chunk.voxel_size, chunk.density + 0.01 * len(neighbours), chunk.material)

    monkeypatch.setitem(voxel_region.CHUNK_SOURCES, "outpainting",
                        lambda model: voxel_region.ChunkSourceSpec(outpainting, keep=True))
    heights = np.full((65, 65), 40.0, np.float32)
    roots = Roots([tmp_path])
    meshes = {}

    def region(i0: int, ni: int) -> dict:
        params = {"voxel_size": 1.0, "cell_size": 4.0, "world": str(tmp_path / "w"), "source": "outpainting",
                  "chunk_min": [i0, 0, 0], "chunk_count": [ni, 1, 1]}
        request = VoxelRequest.from_params("voxels", params, {"heights": heights}, roots)
        return run_voxels(request, lambda done, total, key, mesh: meshes.__setitem__(key, mesh), lambda *a: None)

    first = region(0, 2)
    assert len(calls) == 2 and first["chunks"] == [[0, 0, 0], [1, 0, 0]]
    second = region(2, 1)
    assert len(calls) == 3 and [2, 0, 0] in second["chunks"] and [1, 0, 0] in second["chunks"]
    open_edges = _open_edges(list(meshes.values()))
    inner_seams = np.isin(open_edges[:, :, 0], [32.5, 64.5]).all(1)
    assert len(open_edges) and not inner_seams.any()


MODELS = Path(__file__).resolve().parents[1] / "models"


@pytest.mark.skipif(not (MODELS / "terrain_base.safetensors").is_file(), reason="needs the shipped terrain models")
def test_the_learned_source_is_refused_without_the_voxel_model(private_backend, tmp_path):
    """The voxel model is one of the learned models the server holds: from a models folder without it, the
    learned source is refused at submit, naming its weights, while the featureless one still runs."""
    models = terrain_models_only(tmp_path / "models", MODELS)
    client = Client(private_backend("--models-dir", str(models)).address)
    try:
        with pytest.raises(BackendError) as info:
            client.submit("voxels", _params(source="learned"), "", timeout=10, arrays={"heights": _heights()})
        assert info.value.code == ErrorCode.BAD_PARAMS.value and "voxel_chunks weights" in str(info.value)
        meta, previews = _run(client, "voxels", _params(chunk_count=[1, 1, 1]))
        assert meta["source"] == "featureless" and len(previews) == 1
    finally:
        client.close()


def test_distant_chunks_stream_at_a_coarser_level_of_detail(client):
    """With lod rings around a focus chunk, farther chunks come a level coarser per ring, blocky and smooth (fewer
    faces than the same chunks at full detail); bad rings are refused."""
    for mesh in ("blocky", "smooth"):
        params = _params(mesh=mesh, chunk_min=[-2, -1, 1], chunk_count=[4, 1, 1])  # the level holding the surface
        full, fine = _run(client, "voxels", params)
        meta, coarse = _run(client, "voxels", {**params, "lod": {"focus": [-2, -1, 1], "radius": 1}})
        assert meta["levels"] == [0, 0, 1, 2] and [p.content["meta"]["lod"] for p in coarse] == [0, 0, 1, 2]
        faces = [(len(a.arrays["faces"]), len(b.arrays["faces"])) for a, b in zip(fine, coarse)]
        assert faces[0][0] == faces[0][1] > 0  # its neighbours at full detail too: the same mesh
        assert all(0 < f[1] < f[0] for f in faces[2:]), (mesh, faces)
    for lod, words in (({"focus": [0, 0], "radius": 1}, "lod.focus"), ({"focus": [0, 0, 0], "radius": -1}, "lod.radius"),
                       ({"far": 1}, "unknown")):
        with pytest.raises(BackendError) as info:
            client.submit("voxels", _params(lod=lod), "", timeout=10, arrays={"heights": _heights()})
        assert info.value.code == ErrorCode.BAD_PARAMS.value and words in str(info.value)


def _committed(world: Path, key: ChunkKey) -> None:
    """An artist's committed edit, as voxel_edit stores one: the ground under the test terrain with a cave box."""
    store = VoxelStore(world, 2.0)
    ground = voxelise_terrain(_heights(), CELL, (-32 * CELL, 32 * CELL), key, 2.0, "grass")
    density = ground.density.copy()
    density[4:28, 4:28, 4:28] = -1.0
    chunk = VoxelChunk(key, 2.0, density, ground.material)
    store.put(chunk, 0)
    store.record_edit("carve", {key: None}, {key: (chunk, 0)})


@pytest.mark.skipif(not (MODELS / "voxel_readout.safetensors").is_file(), reason="needs the voxel memory models")
def test_a_world_with_memory_draws_reading_its_committed_edits(private_backend, tmp_path):
    """Opted in (``memory: true``), a new chunk beside a committed one is drawn reading the world's memory and the
    readout's slider estimate: unlike the same world without memory, and the same in a second world with the same
    edit log (a backend serving this checkout's models)."""
    client = Client(private_backend("--models-dir", str(MODELS)).address)
    params = {k: v for k, v in _params(chunk_min=[0, 0, 0], chunk_count=[1, 1, 1]).items() if k != "source"}
    meshes = {}
    try:
        for name, memory in (("a", True), ("b", True), ("plain", False)):
            _committed(tmp_path / name, ChunkKey(1, 0, 0))
            meta, previews = _run(client, "voxels", {**params, "world": str(tmp_path / name), "memory": memory},
                                  timeout=180)
            assert meta["memory"] is memory and meta["source"] == "learned" and len(previews) == 1
            meshes[name] = previews[0].arrays["vertices"]
    finally:
        client.close()
    np.testing.assert_array_equal(meshes["a"], meshes["b"])
    assert meshes["a"].shape != meshes["plain"].shape or not np.array_equal(meshes["a"], meshes["plain"])


@pytest.mark.skipif(not (MODELS / "voxel_chunks.safetensors").is_file(), reason="needs the shipped voxel model")
def test_memory_is_refused_without_the_voxel_memory_models(private_backend, tmp_path):
    """From a models folder with the voxel model but not the memory's, a world with memory is refused at submit,
    naming the weights it needs."""
    models = terrain_models_only(tmp_path / "models", MODELS)
    (models / "voxel_chunks.safetensors").symlink_to(MODELS / "voxel_chunks.safetensors")
    client = Client(private_backend("--models-dir", str(models)).address)
    try:
        with pytest.raises(BackendError) as info:
            client.submit("voxels", _params(source="learned", world=str(tmp_path / "w"), memory=True), "",
                          timeout=10, arrays={"heights": _heights()})
        assert info.value.code == ErrorCode.BAD_PARAMS.value and "voxel_memory and voxel_readout" in str(info.value)
    finally:
        client.close()
