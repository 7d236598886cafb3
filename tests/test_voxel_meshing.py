"""Voxel meshes, edits, storage and .vox files: the featureless surface is the terrain, chunk borders have
no cracks, greedy quads beat face culling, brushes change only what they reach, .vox reads back through
an independent reader (midvoxio)."""

from __future__ import annotations

from itertools import product
from pathlib import Path

import numpy as np
import pytest

from backend.editing.voxel_brushes import VoxelStroke, apply_stroke
from backend.export.voxels import MODEL_SIDE, export_voxel_region, region_grid
from backend.generators.voxel_region import CHUNK_SOURCES, ChunkSettings, ChunkSourceSpec, VoxelRegion
from backend.meshing.voxels import blocky_surface, culled_face_count, smooth_surface
from backend.simulation.spectral_noise import fbm
from backend.voxels.chunk import CHUNK, MATERIAL, PALETTE, ChunkKey, terrain_heights_at
from backend.voxels.lod import LodRings
from backend.world.store import CorruptFileError
from backend.world.voxel_store import VoxelStore


def _terrain(relief: float = 120.0, size: int = 65, seed: int = 1) -> np.ndarray:
    return (fbm(size, np.random.default_rng(seed)) * relief).astype(np.float32)


def _region(heights: np.ndarray, cell_size: float, voxel_size: float, store: VoxelStore | None = None) -> VoxelRegion:
    return VoxelRegion(ChunkSettings(heights, cell_size, voxel_size), CHUNK_SOURCES["featureless"](None), store)


def _tunnels(region: VoxelRegion, keys: list[ChunkKey], voxel: float, top: float) -> None:
    """Carve two crossing tunnels through the keys' box (edits as the artist makes them)."""
    side = CHUNK * voxel
    lo = np.array([min(k.i for k in keys) * side, -(max(k.j for k in keys) + 1) * side, 0.0])
    hi = np.array([(max(k.i for k in keys) + 1) * side, -min(k.j for k in keys) * side, top])
    mid = (lo + hi) / 2
    strokes = [VoxelStroke("carve", np.array([[lo[0], mid[1], mid[2] - 6], [hi[0], mid[1] + 9, mid[2] - 2]]), 5.0),
               VoxelStroke("carve", np.array([[mid[0] + 3, lo[1], mid[2] - 12], [mid[0] - 5, hi[1], mid[2]]]), 4.0)]
    for stroke in strokes:
        for key in stroke.chunks(voxel):
            region.replace(apply_stroke(region.chunk(key), stroke), 0)


def _surface_height(heights: np.ndarray, cell: float, origin: tuple[float, float], xy: np.ndarray) -> np.ndarray:
    return np.array([terrain_heights_at(heights, cell, origin, np.array([x]), np.array([y]))[0, 0] for x, y in xy])


# -- the featureless surface is the terrain ---------------------------------------------------------

@pytest.mark.parametrize("voxel", [1.0, 2.0, 4.0])
def test_featureless_surface_is_a_planar_terrain_exactly(voxel):
    r, c = np.mgrid[0:161, 0:161]
    heights = (60.0 + 0.37 * c - 0.21 * r).astype(np.float32)  # tilted plane, 2 m cells, 320 m a side
    region = _region(heights, 2.0, voxel)
    for key in (ChunkKey(-1, -1, 0), ChunkKey(0, 0, 0), ChunkKey(0, -1, 1)):
        vertices, faces, material = region.mesh(key, "smooth")
        if len(vertices):
            z = _surface_height(heights, 2.0, region.settings.grid_origin, vertices[:, :2].astype(np.float64))
            np.testing.assert_allclose(vertices[:, 2], z, atol=2e-4)
            assert (material == MATERIAL["grass"]).all()  # the cover, even where it is thinner than a voxel
        v, quads, quad_material = region.mesh(key, "blocky")
        up = np.cross(v[quads[:, 1]] - v[quads[:, 0]], v[quads[:, 3]] - v[quads[:, 0]])[:, 2] > 0
        assert (quad_material[up] == MATERIAL["grass"]).all()


def test_featureless_surface_meets_a_rough_terrain_without_holes():
    """A learned-like terrain (16 m cells, 120 m relief) under 2 m voxels: every voxel vertex lies on the
    heightfield (to float32 rounding), and the upward faces cover the footprint exactly once (no holes)."""
    heights, cell, voxel = _terrain(), 16.0, 2.0
    region = _region(heights, cell, voxel)
    side = CHUNK * voxel
    covered, worst = 0.0, 0.0
    for i, j in product((-1, 0), (-1, 0)):
        for k in range(0, int(heights.max() // side) + 1):
            v, f, _ = region.mesh(ChunkKey(i, j, k), "smooth")
            if not len(f):
                continue
            tri = v[f].astype(np.float64)
            cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
            covered += 0.5 * cross[:, 2].sum()  # projected area, signed: overhangs would cancel out
            assert (cross[:, 2] > 0).all()  # a graph over the ground: no folds
            z = _surface_height(heights, cell, region.settings.grid_origin, v[:, :2].astype(np.float64))
            worst = max(worst, float(np.abs(v[:, 2] - z).max()))
    assert covered == pytest.approx((2 * side) ** 2, rel=1e-5)
    assert worst < 1e-3, worst


# -- chunk borders -------------------------------------------------------------------------------------

def _open_edges(meshes: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> np.ndarray:
    """The merged meshes' edges used by only one face, as (E, 2, 3) endpoints (vertices merged bit for bit)."""
    vertices = np.concatenate([m[0] for m in meshes])
    base = np.cumsum([0] + [len(m[0]) for m in meshes])[:-1]
    faces = [m[1] + b for m, b in zip(meshes, base)]
    unique, index = np.unique(vertices, axis=0, return_inverse=True)
    edges = []
    for f in faces:
        f = index.reshape(-1)[f]
        edges += [np.stack([f[:, a], f[:, (a + 1) % f.shape[1]]], 1) for a in range(f.shape[1])]
    edges = np.sort(np.concatenate(edges), 1)
    pairs, counts = np.unique(edges, axis=0, return_counts=True)
    return unique[pairs[counts == 1]]


def _cave_box() -> tuple[VoxelRegion, list[ChunkKey]]:
    """2 x 2 x 2 chunks of 1 m voxels (x, y in [-32, 32], z in [0, 64]) with tunnels crossing every inner border."""
    region = _region(_terrain(60.0, 33), 4.0, 1.0)
    keys = [ChunkKey(i, j, k) for i, j, k in product((-1, 0), (-1, 0), (0, 1))]
    _tunnels(region, keys, 1.0, 64.0)
    return region, keys


def test_smooth_chunk_borders_have_no_cracks():
    """The only open edges of the merged smooth meshes lie on the outer walls of the box."""
    region, keys = _cave_box()
    open_edges = _open_edges([region.mesh(k, "smooth") for k in keys])
    on_wall = (np.isin(open_edges[:, :, 0], [-31.5, 32.5]).all(1) | np.isin(open_edges[:, :, 1], [31.5, -32.5]).all(1)
               | np.isin(open_edges[:, :, 2], [0.5, 64.5]).all(1))
    assert len(open_edges) > 0 and on_wall.all(), open_edges[~on_wall][:5]


def _assert_quads_cover_every_face(region: VoxelRegion, keys: list[ChunkKey]) -> None:
    """Greedy quads have T-junctions, so instead: rasterised back to cell faces, the quads of all chunks cover
    every solid-air face of the box's cells (as the chunks show them) exactly once, looking towards the air."""
    n = 2 * CHUNK
    solid = np.zeros((n + 1,) * 3, bool)  # the box's cells (z, row, col) and its + neighbours' first layer
    for key in keys:
        shown = region.padded_cells(key, region.shown)[0]
        k, j, i = key.k * CHUNK, (key.j + 1) * CHUNK, (key.i + 1) * CHUNK
        solid[k:k + CHUNK + 1, j:j + CHUNK + 1, i:i + CHUNK + 1] = shown
    got = [np.zeros((n, n, n), np.int8) for _ in range(3)]  # per axis: +1 / -1 face after cell p along it
    for key in keys:
        vertices, quads, _ = region.mesh(key, "blocky")
        zrc = np.stack([vertices[:, 2] - 0.5, 31.5 - vertices[:, 1], vertices[:, 0] + 31.5], -1)  # cell coordinates
        corners = zrc[quads]
        normal = np.cross(corners[:, 1] - corners[:, 0], corners[:, 3] - corners[:, 0]) * [1, -1, 1]  # (z, row, col)
        for quad, nrm in zip(corners, normal):
            axis = int(np.argmax(np.abs(nrm)))
            lo, hi = np.rint(quad.min(0) + 0.5).astype(int), np.rint(quad.max(0) + 0.5).astype(int)
            lo[axis] -= 1
            hi[axis] = lo[axis] + 1
            box = tuple(slice(a, b) for a, b in zip(lo, hi))
            assert not got[axis][box].any(), "two quads cover one face"
            got[axis][box] = np.sign(nrm[axis] * (1 if axis != 1 else -1))
    for axis in range(3):
        below = [slice(0, n)] * 3
        above = list(below)
        above[axis] = slice(1, n + 1)
        want = solid[tuple(below)].astype(np.int8) - solid[tuple(above)]  # +1: solid below, face looks up the axis
        np.testing.assert_array_equal(got[axis], want)


def test_blocky_chunk_borders_have_no_cracks():
    region, keys = _cave_box()
    _assert_quads_cover_every_face(region, keys)
    for key in keys:  # at full detail the chunks show their own cells
        np.testing.assert_array_equal(region.shown(key)[0], region.chunk(key).solid)


def test_coarse_levels_of_detail_meet_fine_chunks_without_a_gap():
    """One chunk of the box at full detail, the seven around it a level coarser (2³ cells a block): the quads
    still cover every face between solid and air once, also on the planes where coarse chunks meet the fine
    one, and the coarse chunks' meshes have far fewer quads than at full detail."""
    fine, keys = _cave_box()
    coarse = VoxelRegion(fine.settings, fine.source, lod=LodRings(ChunkKey(-1, -1, 0), 0))
    for key in keys:
        coarse.replace(fine.chunk(key), 0)
    _assert_quads_cover_every_face(coarse, keys)
    far = [k for k in keys if coarse.lod.level(k) == 1]
    assert len(far) == 7
    for key in far:
        solid = coarse.shown(key)[0]
        assert (solid == solid[::2, ::2, ::2].repeat(2, 0).repeat(2, 1).repeat(2, 2)).all()  # whole blocks
        assert abs(solid.mean() - fine.chunk(key).solid.mean()) < 0.05
    quads = [sum(len(region.mesh(k, "blocky")[1]) for k in far) for region in (fine, coarse)]
    assert quads[1] * 2 <= quads[0], quads


def test_smooth_levels_of_detail_meet_without_a_gap():
    """Smooth meshes of the same box, one chunk fine and seven coarser: merged, their only open edges lie on the
    box's outer walls (each side closes its surface in the plane where the levels meet), and the coarse chunks
    have far fewer triangles than at full detail."""
    fine, keys = _cave_box()
    coarse = VoxelRegion(fine.settings, fine.source, makes=keys, lod=LodRings(ChunkKey(-1, -1, 0), 0))
    for key in keys:
        coarse.replace(fine.chunk(key), 0)
    open_edges = _open_edges([coarse.mesh(k, "smooth") for k in keys])
    on_wall = (np.isin(open_edges[:, :, 0], [-31.5, 32.5]).all(1) | np.isin(open_edges[:, :, 1], [31.5, -32.5]).all(1)
               | np.isin(open_edges[:, :, 2], [0.5, 64.5]).all(1))
    assert len(open_edges) > 0 and on_wall.all(), open_edges[~on_wall][:5]
    far = [k for k in keys if coarse.lod.level(k) == 1]
    triangles = [sum(len(region.mesh(k, "smooth")[1]) for k in far) for region in (fine, coarse)]
    assert triangles[1] * 2 <= triangles[0], triangles


def test_blocky_faces_are_outward_and_cover_every_culled_face():
    """A blob inside one chunk: quads' area = the culled faces' count, and the divergence theorem on the
    oriented quads gives the blob's volume (so every quad looks outward)."""
    n = CHUNK
    z, r, c = np.mgrid[0:n + 1, 0:n + 1, 0:n + 1]
    solid = ((z - 14) ** 2 + (r - 15) ** 2 / 2 + (c - 13) ** 2 < 80) | ((z > 0) & (z < 8) & (c > 20) & (r > 3))
    solid[n] = solid[:, n] = solid[:, :, n] = False
    material = np.where(solid, 1 + (z // 5) % 4, 0).astype(np.uint8)
    vertices, quads, mats = blocky_surface(solid, material, 2.0, (0.0, 0.0, 0.0))
    corners = vertices[quads].astype(np.float64)
    area = np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 3] - corners[:, 0]), axis=1)
    assert area.sum() == pytest.approx(culled_face_count(solid) * 4.0)
    volume = sum(np.einsum("ij,ij->i", t[:, 0], np.cross(t[:, 1], t[:, 2])).sum() / 6
                 for t in (corners[:, [0, 1, 2]], corners[:, [0, 2, 3]]))
    assert volume == pytest.approx(solid.sum() * 8.0)
    assert set(np.unique(mats)) <= set(range(1, 5))


def test_greedy_meshing_halves_the_quads_of_face_culling_on_cave_chunks():
    """Terrain at the learned models' 30 m cells, 2 m voxels, tunnels through it."""
    voxel, heights = 2.0, _terrain(150.0)
    region = _region(heights, 30.0, voxel)
    keys = [ChunkKey(i, j, k) for i, j, k in product((-1, 0), (-1, 0), (0, 1))]
    _tunnels(region, keys, voxel, 100.0)
    greedy = culled = 0
    for key in keys:
        density, _ = region.padded(key)
        culled += culled_face_count(density > 0)
        greedy += len(region.mesh(key, "blocky")[1])
    assert culled >= 2 * greedy > 0, (culled, greedy)


def test_smooth_materials_come_from_the_solid_side():
    density = np.full((4, 4, 4), -1.0, np.float32)
    density[:2] = 1.0
    material = np.zeros((4, 4, 4), np.uint8)
    material[0], material[1] = MATERIAL["rock"], MATERIAL["sand"]
    vertices, faces, vertex_material = smooth_surface(density, material, 1.0, (0.0, 0.0, 0.0))
    assert len(faces) and (vertex_material == MATERIAL["sand"]).all()
    np.testing.assert_allclose(vertices[:, 2], 1.5)


# -- brushes and the store -------------------------------------------------------------------------------

def test_carve_fill_regenerate_change_only_what_they_reach(tmp_path):
    heights = np.full((33, 33), 50.0, np.float32)
    store = VoxelStore(tmp_path, 1.0)
    region = _region(heights, 4.0, 1.0, store)
    key = ChunkKey(0, 0, 1)
    before = region.chunk(key)
    carve = VoxelStroke("carve", np.array([[2.0, -16.0, 40.0], [30.0, -16.0, 40.0]]), 4.0)
    carved = apply_stroke(before, carve)
    x, y, z = before.cell_centres()
    zz, yy, xx = np.meshgrid(z, y, x, indexing="ij")
    axis_dist = np.hypot(yy + 16.0, zz - 40.0)
    inside = (axis_dist < 3.9) & (xx > 2.0) & (xx < 30.0)
    assert (carved.material[inside] == MATERIAL["air"]).all() and (carved.density[inside] < 0).all()
    far = axis_dist > 4.0 + 2.5
    np.testing.assert_array_equal(carved.density[far], before.density[far])
    np.testing.assert_array_equal(carved.material[far], before.material[far])
    region.replace(carved, 0)
    filled = apply_stroke(carved, VoxelStroke("fill", np.array([[16.0, -16.0, 40.0]]), 2.0, MATERIAL["ore_gold"]))
    assert (filled.material[(np.hypot(xx - 16, axis_dist) < 1.9)] == MATERIAL["ore_gold"]).all()
    # the featureless source's next variant is the untouched ground: regenerate heals the tunnel
    healed = apply_stroke(carved, VoxelStroke("regenerate", carve.points, 6.0), region.fresh(key, 1))
    np.testing.assert_array_equal(healed.material, before.material)
    # stored, and read back bit for bit by a new region (a reopened world)
    again = _region(heights, 4.0, 1.0, VoxelStore(tmp_path, 1.0)).get(key)
    np.testing.assert_array_equal(again[0].density, carved.density)
    assert again[1] == 0


def test_a_source_that_outpaints_is_kept_as_made(tmp_path):
    """Chunks of a keep-source depend on their neighbours (here: how many the region held when each was made),
    so the order of requests would change the world; they are stored as made and read back in any order."""
    def outpainting(key, settings, variant, neighbours):
        chunk = CHUNK_SOURCES["featureless"](None).make(key, settings, variant, neighbours)
        return type(chunk)(key, chunk.voxel_size, chunk.density + 0.01 * len(neighbours), chunk.material)

    heights = np.full((33, 33), 50.0, np.float32)
    settings = ChunkSettings(heights, 4.0, 2.0)
    first = VoxelRegion(settings, ChunkSourceSpec(outpainting, keep=True), VoxelStore(tmp_path, 2.0))
    keys = [ChunkKey(0, 0, 0), ChunkKey(1, 0, 0), ChunkKey(0, 1, 0)]
    made = [first.chunk(k).density.copy() for k in keys]
    assert made[0][0, 0, 0] != made[1][0, 0, 0]  # the second saw the first as a neighbour
    again = VoxelRegion(settings, ChunkSourceSpec(outpainting, keep=True), VoxelStore(tmp_path, 2.0))
    for key, density in zip(reversed(keys), reversed(made)):
        np.testing.assert_array_equal(again.chunk(key).density, density)


def test_damaged_voxel_chunk_raises_instead_of_regenerating(tmp_path):
    heights = np.full((33, 33), 50.0, np.float32)
    store = VoxelStore(tmp_path, 2.0)
    chunk = _region(heights, 4.0, 2.0).chunk(ChunkKey(0, 0, 0))
    store.put(chunk, 3)
    path = store.path(chunk.key)
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError):
        store.get(chunk.key)


def test_stroke_params_are_checked():
    for bad in ({"op": "melt", "points": [[0, 0, 0]], "radius": 2},
                {"op": "carve", "points": [], "radius": 2},
                {"op": "carve", "points": [[0, 0, float("nan")]], "radius": 2},
                {"op": "carve", "points": [[0, 0, 0]], "radius": 500},
                {"op": "fill", "points": [[0, 0, 0]], "radius": 2, "material": "air"}):
        with pytest.raises(ValueError):
            VoxelStroke.from_params(bad)


# -- .vox --------------------------------------------------------------------------------------------------

def _read_vox(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The file's models placed by its scene graph (midvoxio parses; placement: centre - size // 2) and
    its palette."""
    from midvoxio.parser import Parser

    vox = Parser(str(path)).parse()
    shapes = {n.node_id: n.models[0].id for n in vox.nshps}
    placed = []
    for node in vox.ntrns:
        if node.child_node_id in shapes:
            model = shapes[node.child_node_id]
            centre = np.array([int(t) for t in node.frames[0]["_t"].split()])
            placed.append((centre - np.array(vox.sizes[model]) // 2, np.array(vox.voxels[model])))
    top = np.max([corner + np.array(vox.sizes[m]) for m, (corner, _) in enumerate(placed)], 0)
    grid = np.zeros(top, np.uint8)
    for corner, voxels in placed:
        xyz = voxels[:, :3].astype(np.int64) + corner
        grid[xyz[:, 0], xyz[:, 1], xyz[:, 2]] = voxels[:, 3]
    return grid, np.array(vox.palettes[0], np.uint8)


def test_vox_round_trips_through_midvoxio(tmp_path):
    """9 chunks east (288 voxels: two models along x) by 1 by 2, with tunnels: every voxel and colour back."""
    voxel, heights = 1.0, _terrain(40.0, 129)
    region = _region(heights, 4.0, voxel)
    keys = [ChunkKey(i, 0, k) for i in range(-5, 4) for k in (0, 1)]
    _tunnels(region, keys, voxel, 50.0)
    chunks = [region.chunk(k) for k in keys]
    files = export_voxel_region(chunks, [region.mesh(k, "blocky") for k in keys], tmp_path, "caves", ("vox", "glb"))
    assert [f.name for f in files] == ["caves.vox", "caves.glb", "caves_voxels.json"]
    expected, _ = region_grid(chunks)
    assert expected.shape[0] > MODEL_SIDE and (expected == MATERIAL["air"]).any() and (expected != 0).any()
    got, palette = _read_vox(files[0])
    np.testing.assert_array_equal(got, expected[:got.shape[0], :got.shape[1], :got.shape[2]])
    assert not expected[got.shape[0]:].any() and not expected[:, got.shape[1]:].any()
    for index, (_, rgb) in enumerate(PALETTE[1:], start=1):
        assert tuple(palette[index - 1][:3]) == rgb  # colour index m is palette entry m - 1
