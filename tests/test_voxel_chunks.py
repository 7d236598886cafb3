"""Voxel chunk generation: locked cells, determinism (also after a restart), the terrain outside features,
seams after outpainting, bad requests."""

import subprocess
from dataclasses import replace
from itertools import product
import sys
from pathlib import Path

import numpy as np
import pytest

from backend.generators.voxel_chunks import VoxelChunkRequest, canvas_axes, generate_chunk, terrain_depth
from backend.models.shipped import load_voxel_model
from backend.models.voxel import VOXEL_FILE, VOXEL_QUALITY, VoxelModel
from backend.voxels import channels as ch
from backend.voxels.chunk import CHUNK, MATERIAL, ChunkKey, VoxelChunk, voxelise_terrain
from backend.voxels.measures import chunk_measures

sys.path.insert(0, str(Path(__file__).parent))
from voxel_helpers import sloped_heights, tiny_voxel_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ORIGIN = (-128.0, 128.0)  # the heightfield's north-west vertex: chunks (-2..1, -2..1, k) lie under it


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    return tiny_voxel_model(tmp_path_factory.mktemp("voxel_model"))


@pytest.fixture(scope="module")
def model(model_file) -> VoxelModel:
    return VoxelModel.load(model_file)


def request(key: ChunkKey = ChunkKey(0, 0, 0), **changes) -> VoxelChunkRequest:
    return VoxelChunkRequest(sloped_heights(), 8.0, ORIGIN, key, **{"style_weights": {"alpine": 1.0}, **changes})


def bits(chunk: VoxelChunk) -> bytes:
    return chunk.density.tobytes() + chunk.material.tobytes()


def test_locked_voxels_are_kept_bit_for_bit(model) -> None:
    current = generate_chunk(model, request(world_seed=1))
    locked = np.zeros((CHUNK,) * 3, bool)
    locked[4:20, 8:24, 0:12] = True
    current.density[locked] += np.float32(0.123)  # the artist's own values, which no model would draw
    out = generate_chunk(model, request(world_seed=2, locked=locked, current=current))
    assert out.density[locked].tobytes() == current.density[locked].tobytes()
    assert (out.material[locked] == current.material[locked]).all()
    assert not np.array_equal(out.density[~locked], current.density[~locked])  # the rest was drawn anew


def test_same_seed_and_chunk_regenerate_identically_also_after_a_restart(model, model_file, tmp_path) -> None:
    first = generate_chunk(model, request(ChunkKey(1, 0, 0), world_seed=7))
    assert bits(generate_chunk(model, request(ChunkKey(1, 0, 0), world_seed=7))) == bits(first)
    assert bits(generate_chunk(model, request(ChunkKey(1, 0, 0), world_seed=8))) != bits(first)
    assert bits(generate_chunk(model, request(ChunkKey(0, 0, 0), world_seed=7))) != bits(first)
    script = "\n".join([
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r})",
        "import numpy as np, torch",
        "from backend.models.voxel import VoxelModel",
        "from backend.generators.voxel_chunks import VoxelChunkRequest, generate_chunk",
        "from backend.voxels.chunk import ChunkKey",
        "from voxel_helpers import sloped_heights",
        f"torch.set_num_threads({__import__('torch').get_num_threads()})",
        f"m = VoxelModel.load({str(model_file)!r})",
        f"c = generate_chunk(m, VoxelChunkRequest(sloped_heights(), 8.0, {ORIGIN}, ChunkKey(1, 0, 0), world_seed=7,"
        " style_weights={'alpine': 1.0}))",
        f"np.savez({str(tmp_path / 'c.npz')!r}, density=c.density, material=c.material)"])
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True, timeout=180)
    with np.load(tmp_path / "c.npz") as z:
        assert z["density"].tobytes() + z["material"].tobytes() == bits(first)


def test_voxel_surface_is_the_terrain_outside_features(model) -> None:
    key = ChunkKey(0, 0, 0)
    chunk = generate_chunk(model, request(key, world_seed=3))
    z, y, x = canvas_axes(key, 2.0, 0)
    depth = terrain_depth(request(key), z, y, x)
    changed = chunk.solid != (depth > 0)
    assert 0 < changed.mean() < 0.5  # an untrained model draws features somewhere, not everywhere
    near = changed.copy()
    for axis in range(3):
        for shift in (1, -1):
            near |= np.roll(changed, shift, axis)
    # Away from every changed cell the density is the terrain's to the bit: the meshes meet without a crack.
    assert chunk.density[~near].tobytes() == depth[~near].tobytes()
    featureless = ~near.any(axis=0)  # whole columns without features
    assert featureless.any() and (chunk.solid[:, featureless] == (depth > 0)[:, featureless]).all()


def test_slider_guidance_acts_only_on_sliders_that_are_set(model, monkeypatch) -> None:
    """Sliders at 0.5 are guidance's null, so a guided quality draws what the plain one draws there; a set
    slider is pushed further from it."""
    unset, caves = request(world_seed=4), request(world_seed=4, sliders={"cave_density": 1.0})
    interactive = VOXEL_QUALITY["interactive"]
    monkeypatch.setitem(VOXEL_QUALITY, "interactive", replace(interactive, slider_guidance=1.0))
    plain_unset, plain_caves = bits(generate_chunk(model, unset)), bits(generate_chunk(model, caves))
    monkeypatch.setitem(VOXEL_QUALITY, "interactive", replace(interactive, slider_guidance=3.0))
    assert bits(generate_chunk(model, unset)) == plain_unset
    assert bits(generate_chunk(model, caves)) != plain_caves


def test_bad_requests_are_refused_clearly(model) -> None:
    with pytest.raises(ValueError, match="quality"):
        request(quality="best")
    with pytest.raises(ValueError, match="locked"):
        request(locked=np.zeros((8, 8, 8), bool))
    with pytest.raises(ValueError, match="heights"):
        VoxelChunkRequest(np.zeros(5), 8.0, ORIGIN, ChunkKey(0, 0, 0))
    with pytest.raises(ValueError, match="finite"):
        VoxelChunkRequest(np.full((4, 4), np.nan), 8.0, ORIGIN, ChunkKey(0, 0, 0))
    with pytest.raises(ValueError, match="sliders"):
        request(sliders={"cave_density": 3.0})
    with pytest.raises(ValueError, match="passages"):
        request(passages=1.5)
    with pytest.raises(FileNotFoundError, match="train_voxels"):
        load_voxel_model(ROOT / "no-such-folder")
    with pytest.raises(ValueError, match="unknown style"):
        generate_chunk(model, VoxelChunkRequest(sloped_heights(), 8.0, ORIGIN, ChunkKey(0, 0, 0),
                                                style_weights={"lunar": 1.0}))


SHIPPED = ROOT / "models" / VOXEL_FILE  # this checkout's (models_dir() may name an installed copy)


def seam_and_interior(west: VoxelChunk, east: VoxelChunk) -> tuple[float, float]:
    """Mean jump of the truncated density across the face between the chunks, and across their inner planes."""
    a, b = ch.tsdf(west.density, 2.0), ch.tsdf(east.density, 2.0)
    return float(np.abs(b[:, :, 0] - a[:, :, -1]).mean()), float(np.mean([np.abs(np.diff(t, axis=2)).mean()
                                                                           for t in (a, b)]))


needs_shipped = pytest.mark.skipif(not SHIPPED.is_file(),
                                   reason="the shipped voxel model is trained by configs/voxel_chunks.json")


@needs_shipped
@pytest.mark.parametrize("style", ["archipelago", "volcanic"])  # the report's worst seams before feathering
def test_outpainted_chunk_faces_match_like_interior_planes(style) -> None:
    model = load_voxel_model(SHIPPED.parent)
    face, interior = [], []
    for k, seed in product((0, -1), range(6)):  # at the terrain surface and wholly under it
        sliders = {"cave_density": 1.0, "overhang": 1.0}
        left = generate_chunk(model, request(ChunkKey(0, 0, k), world_seed=seed, sliders=sliders,
                                             style_weights={style: 1.0}))
        right = generate_chunk(model, request(ChunkKey(1, 0, k), world_seed=seed, sliders=sliders,
                                              style_weights={style: 1.0}, neighbours={(-1, 0, 0): left}))
        pair = seam_and_interior(left, right)
        face.append(pair[0])
        interior.append(pair[1])
    assert np.mean(face) <= 1.2 * np.mean(interior), (face, interior)


@needs_shipped
def test_a_tunnel_met_at_the_face_goes_on_into_the_outpainted_chunk() -> None:
    """A tunnel reaching the east face of a kept chunk is open in the first plane of the chunk outpainted
    beside it, not walled off at the face (as plain replacement of the known cells left it)."""
    model = load_voxel_model(SHIPPED.parent)
    key = ChunkKey(0, 0, -1)  # wholly under the terrain: the tunnel is the only feature
    ground = voxelise_terrain(sloped_heights(), 8.0, ORIGIN, key, 2.0, "grass")
    z, row = np.mgrid[0:CHUNK, 0:CHUNK]
    section = (z - 12) ** 2 + (row - 16) ** 2 <= 9
    tunnel = np.zeros((CHUNK,) * 3, bool)
    tunnel[:, :, 8:] = section[:, :, None]
    west = VoxelChunk(key, 2.0, np.where(tunnel, -1.0, ground.density).astype(np.float32),
                      np.where(tunnel, MATERIAL["air"], ground.material).astype(np.uint8))
    for seed in (0, 1):
        east = generate_chunk(model, request(ChunkKey(1, 0, -1), world_seed=seed, neighbours={(-1, 0, 0): west}))
        assert (east.density[:, :, 0][section] <= 0).mean() >= 0.9
        face, interior = seam_and_interior(west, east)
        assert face <= 1.2 * interior, (face, interior)


@needs_shipped
def test_the_sliders_move_caves_and_overhangs() -> None:
    """Cave density 1 draws several times the cave volume of 0, and overhang 1 draws overhangs that 0 does not
    (unguided, the shipped model drew 3x the caves and no overhangs at either end; guided 3: 60x and 0.6 %)."""
    model = load_voxel_model(SHIPPED.parent)
    key = ChunkKey(0, 0, 0)
    z, y, x = canvas_axes(key, 2.0, 0)
    depth = terrain_depth(request(key), z, y, x)

    def mean_measures(sliders: dict[str, float]) -> dict[str, float]:
        found = [chunk_measures(generate_chunk(model, request(key, world_seed=seed, style_weights={style: 1.0},
                                                             sliders=sliders)).solid, depth)
                 for seed, style in product(range(4), ("alpine", "canyon_mesa"))]
        return {m: float(np.mean([f[m] for f in found])) for m in ("cave_share", "overhang_columns")}

    caves = {v: mean_measures({"cave_density": v})["cave_share"] for v in (0.0, 1.0)}
    assert caves[1.0] >= 5 * caves[0.0] and caves[1.0] > 0.003, caves
    overhangs = {v: mean_measures({"overhang": v})["overhang_columns"] for v in (0.0, 1.0)}
    assert overhangs[1.0] >= 0.002 and overhangs[1.0] > 2 * overhangs[0.0], overhangs


@needs_shipped
def test_passages_join_the_drawn_caves_into_longer_systems() -> None:
    """With passages the same chunks hold fewer, longer cave systems than as drawn (passages 0), and more so the
    farther they reach; the caves' cells as drawn stay open."""
    model = load_voxel_model(SHIPPED.parent)
    key = ChunkKey(0, 0, 0)
    depth = terrain_depth(request(key), *canvas_axes(key, 2.0, 0))
    found: dict[float, list[dict[str, float]]] = {}
    for amount in (0.0, 0.5, 1.0):
        chunks = [generate_chunk(model, request(key, world_seed=seed, style_weights={"canyon_mesa": 1.0},
                                                sliders={"cave_density": 1.0}, passages=amount, refinement="none"))
                  for seed in range(3)]
        found[amount] = [chunk_measures(c.solid, depth) for c in chunks]
        if amount == 0.0:
            drawn = [c.solid for c in chunks]
        else:
            assert all(not (c.solid & ~d & (depth > 0)).any() for c, d in zip(chunks, drawn))  # nothing refilled
    systems = {a: np.mean([f["systems"] for f in v]) for a, v in found.items()}
    longest = {a: np.nanmean([f["elongation"] for f in v]) for a, v in found.items()}
    assert systems[0.0] > systems[0.5] > systems[1.0], systems
    assert longest[1.0] > longest[0.5] > longest[0.0], longest
