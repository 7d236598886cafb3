"""The voxel corpus's simulated features: plausible, seeded, the terrain outside them, across chunk borders."""

import numpy as np
from scipy import ndimage

from backend.data.voxel_corpus import WINDOW, VoxelRegions, VoxelWindowDataset
from backend.voxels import channels as ch
from backend.voxels import energy as en
from backend.voxels.chunk import CHUNK, MATERIAL
from backend.voxels.features import Region, simulate_region


def region() -> Region:
    vs, nz, n = 2.0, 64, 64
    x = vs * (np.arange(n) + 0.5)
    y = -vs * (np.arange(n) + 0.5)
    r, c = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    surface = (50 + 0.5 * c * vs + 8 * np.sin(r / 7.0)).astype(np.float32)  # a slope rising east
    return Region(vs * (np.arange(nz) + 0.5), y, x, surface, vs)


def test_region_features_are_plausible_seeded_and_leave_the_terrain_elsewhere() -> None:
    reg = region()
    sliders = {"cave_density": 1.0, "overhang": 1.0}
    density, material = simulate_region(reg, "canyon_mesa", sliders, seed=3)
    again, _ = simulate_region(reg, "canyon_mesa", sliders, seed=3)
    other, _ = simulate_region(reg, "canyon_mesa", sliders, seed=4)
    assert density.tobytes() == again.tobytes() and density.tobytes() != other.tobytes()
    depth = reg.terrain_depth()
    caves = (depth > 0) & (density <= 0)
    assert caves.sum() > 500  # tunnels and caverns were carved
    assert ((depth <= 0) & (density > 0)).sum() > 0  # rock stands above the terrain: overhangs, arches
    assert en.energy(en.classes_of(density, material)) == 0  # the corpus shows only plausible ground
    changed = ndimage.binary_dilation((density > 0) != (depth > 0))
    assert density[~changed].tobytes() == depth[~changed].tobytes()
    assert (material[density <= 0] != MATERIAL["rock"]).all()
    # A cave crosses the border between the region's two chunks east-west: features live in world cells.
    labels, _ = ndimage.label(caves)
    west, east = set(np.unique(labels[:, :, CHUNK - 1])) - {0}, set(np.unique(labels[:, :, CHUNK])) - {0}
    assert west & east


def test_window_items_carry_known_cells_only_where_known() -> None:
    reg = region()
    density, material = simulate_region(reg, "alpine", {"cave_density": 1.0}, seed=0)
    regions = VoxelRegions(density[None].astype(np.float16), material[None], reg.surface[None], reg.z[None],
                           np.array([0]), np.array([[1.0, 0.5]], np.float32), ("alpine", "canyon_mesa"), 2.0)
    data = VoxelWindowDataset(regions)
    x, cond = data[5]
    assert x.shape == (ch.N_CHANNELS * 8, WINDOW // 2, WINDOW // 2, WINDOW // 2)
    assert cond.spatial.shape == ((2 + ch.N_CHANNELS) * 8, WINDOW // 2, WINDOW // 2, WINDOW // 2)
    assert cond.style_weights.tolist() == [1.0, 0.0] and cond.sliders.tolist() == [1.0, 0.0]
    known = cond.spatial[8:16]  # the folded known mask
    values = cond.spatial[16:]
    assert ((values != 0) <= (known.repeat(ch.N_CHANNELS, 1, 1, 1) > 0)).all()
    assert data[5][0].equal(x)  # items are functions of their index


def test_chunk_measures_count_caves_systems_and_overhangs() -> None:
    from backend.voxels.measures import chunk_measures

    depth = np.broadcast_to((20.5 - np.arange(32, dtype=np.float32))[:, None, None], (32, 32, 32))
    solid = depth > 0  # ground up to z 20
    solid[5:8, 5:8, 5:8] = False  # a sealed cave of 27 cells
    solid[15:21, 20, 20] = False  # a shaft open to the sky: 6 cells
    solid[25, 0:4, 0:4] = True  # a ledge over open air above the terrain (16 columns)
    m = chunk_measures(solid, depth)
    assert m["systems"] == 2 and m["largest_system"] == 27 / 33
    assert m["cave_share"] == 33 / (21 * 32 * 32) and m["open_to_sky"] == 6 / 33
    assert m["overhang_columns"] == 16 / (32 * 32)


def test_elongation_tells_tunnels_from_pockets() -> None:
    from backend.voxels.measures import elongation

    caves = np.zeros((32, 32, 32), bool)
    assert np.isnan(elongation(caves))
    caves[2:4, 2:4, 2:4] = True  # 8 cells: too small to shape, left out
    assert np.isnan(elongation(caves))
    caves[20:26, 20:26, 20:26] = True  # a 6-cell cube: as long as it is thick
    assert abs(elongation(caves) - 1) < 0.05
    tunnel = np.zeros_like(caves)
    tunnel[10:13, 10:13, 4:28] = True  # 24 cells long, 3 across: 24 / (2 x 2)
    assert abs(elongation(tunnel) - 6) < 0.05
    both = caves | tunnel  # weighted by volume: 216 cube cells, 216 tunnel cells
    assert abs(elongation(both) - (elongation(caves) + elongation(tunnel)) / 2) < 1e-9


def test_feature_weight_covers_the_features_and_their_reach() -> None:
    import torch

    from backend.training.train_voxels import FeatureWeight

    x = torch.zeros(2, ch.N_CHANNELS, 16, 16, 16)
    x[0, 0, 8, 8, 8] = -1.5  # a cave cell
    x[0, 0, 2, 2, 2] = -0.2  # haze inside the dead zone: no feature
    x[1, 1, 4, 4, 4] = 1.0  # water: not a change of density
    weight = ch.unfold(FeatureWeight(5.0, 2)(ch.fold(x)))
    assert weight.shape == x.shape
    assert (weight[0, :, 6:11, 6:11, 6:11] == 6).all() and (weight[0] == 6).sum() == ch.N_CHANNELS * 5**3
    assert (weight[0] == 1).sum() == weight[0].numel() - ch.N_CHANNELS * 5**3 and (weight[1] == 1).all()

