"""Brush jobs over real sockets against a backend serving tiny learned models: each brush kind moves the
terrain the intended way inside the stroke, leaves everything else bit for bit, leaves no seam at the
stroke's rim, and bad params are refused at submit naming the field."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch

from backend.editing import seam_ratio
from backend.world.store import WorldStore
from protocol.client import BackendError, Client

SIZE_M, RES = 30.0 * 127, 128  # the tiny models' own 30 m cells: the terrain is one whole model map
CELL = SIZE_M / (RES - 1)
PATH = [[64.0, 30.0, 1.0], [60.0, 64.0, 1.0], [66.0, 98.0, 1.0]]  # west to east across the middle
RADIUS = 14.0


@pytest.fixture(scope="module")
def brush_client(learned_backend):
    c = Client(learned_backend.address)
    yield c
    c.close()


@pytest.fixture(scope="module")
def terrain(brush_client) -> np.ndarray:
    job = brush_client.submit("generate", {"style": "alpine", "resolution": RES, "size_m": SIZE_M, "height_m": 400.0,
                                           "seed": 2, "generator": "diffusion"})
    return brush_client.wait_result(job, timeout=120).arrays["heights"]


def brush(client: Client, heights: np.ndarray, kind: str, stroke=PATH, **params):
    params = {"kind": kind, "stroke": stroke, "radius": RADIUS, "strength": 0.8, "cell_size": CELL,
              "style": "alpine", "seed": 1, **params}
    job = client.submit("brush", params, target="pytest-brush", arrays={"heights": heights})
    return client.wait_result(job, timeout=120)


def _core(weight: np.ndarray) -> np.ndarray:
    return weight > 0.5


def _path_distance(window: list[int]) -> np.ndarray:
    from backend.editing.brushes import path_distance
    return path_distance(np.array(PATH), tuple(window))[0]


def _laplacian(h: np.ndarray) -> np.ndarray:
    return np.abs(h[1:-1, 2:] + h[1:-1, :-2] + h[2:, 1:-1] + h[:-2, 1:-1] - 4 * h[1:-1, 1:-1])


def _direction(kind: str, before: np.ndarray, after: np.ndarray, weight: np.ndarray, window: list[int],
               flat_m: float) -> tuple[float, float]:
    """(the measure the brush should increase, its value before) for each kind."""
    core = _core(weight)
    if kind in ("raise", "lower"):
        sign = 1 if kind == "raise" else -1
        return sign * float(after[core].mean()), sign * float(before[core].mean())
    if kind in ("ridge", "valley"):  # height on the path above (below) the stroke's sides
        d = _path_distance(window)
        sign = 1 if kind == "ridge" else -1
        on, side = d < 2, (d > 0.6 * RADIUS) & (d < RADIUS)
        return (sign * float(after[on].mean() - after[side].mean()),
                sign * float(before[on].mean() - before[side].mean()))
    if kind in ("smooth", "erode"):  # less curvature (smooth) / gentler steepest slopes (erode)
        inner = core[1:-1, 1:-1]
        if kind == "smooth":
            return -float(_laplacian(after)[inner].mean()), -float(_laplacian(before)[inner].mean())
        slope = lambda h: np.hypot(*np.gradient(h.astype(np.float64)))[core]  # noqa: E731
        return -float(np.percentile(slope(after), 99)), -float(np.percentile(slope(before), 99))
    if kind == "flatten":
        return -float(np.abs(after[core] - flat_m).mean()), -float(np.abs(before[core] - flat_m).mean())
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["raise", "lower", "smooth", "flatten", "ridge", "valley", "erode"])
def test_brush_moves_terrain_the_intended_way(brush_client, terrain, kind):
    flat_m = float(terrain[64, 30])  # flatten's default level: the height under the first point
    result = brush(brush_client, terrain, kind)
    r0, c0, r1, c1 = window = result.content["meta"]["window"]
    after, weight = result.arrays["heights"], result.arrays["weight"]
    before = terrain[r0:r1, c0:c1]
    assert after.shape == before.shape == weight.shape and after.dtype == np.float32
    np.testing.assert_array_equal(after[weight == 0], before[weight == 0])  # outside the stroke: bit for bit
    assert (weight == 0).any() and (weight > 0.5).any()
    measure, was = _direction(kind, before, after, weight, window, flat_m)
    assert measure > was, f"{kind}: {measure} <= {was}"
    assert seam_ratio(after, weight) < 2.0  # the rim looks like anywhere else


def test_regenerate_and_style_paint_change_only_the_stroke(brush_client, terrain):
    for kind in ("regenerate", "style_paint"):
        result = brush(brush_client, terrain, kind, style="desert_dunes")
        r0, c0, r1, c1 = result.content["meta"]["window"]
        after, weight = result.arrays["heights"], result.arrays["weight"]
        before = terrain[r0:r1, c0:c1]
        np.testing.assert_array_equal(after[weight == 0], before[weight == 0])
        assert np.abs(after - before)[weight > 0.5].mean() > 1.0  # metres: new ground in the stroke
        assert seam_ratio(after, weight) < 2.5


def test_same_request_same_result_and_previews_stream(brush_client, terrain):
    seen: list[str] = []
    job = brush_client.submit("brush", {"kind": "raise", "stroke": PATH, "radius": RADIUS, "cell_size": CELL,
                                        "seed": 5}, target="pytest-brush", arrays={"heights": terrain})
    first = brush_client.wait_result(job, timeout=60, on_message=lambda m: seen.append(m.kind))
    assert "preview" in seen
    second = brush(brush_client, terrain, "raise", strength=0.5, seed=5)
    np.testing.assert_array_equal(first.arrays["heights"], second.arrays["heights"])


def test_committed_stroke_goes_to_the_world_log(brush_client, terrain, tmp_path):
    world = tmp_path / "world"
    result = brush(brush_client, terrain, "raise", world=str(world))
    preview = brush(brush_client, terrain, "lower", world=str(world), commit=False)
    assert result.content["meta"]["edit_seq"] == 0 and preview.content["meta"]["edit_seq"] is None
    store = WorldStore.open(world)  # what a restarted backend reads back
    (edit,) = store.edits()
    assert edit.kind == "raise" and list(edit.window) == result.content["meta"]["window"]
    deltas = store.edit_deltas(edit)
    np.testing.assert_array_equal(deltas["after"], result.arrays["heights"])
    r0, c0, r1, c1 = edit.window
    tile = store.get_tile((0, 0)).field.heights
    np.testing.assert_array_equal(tile[r0:r1, c0:c1], result.arrays["heights"])
    np.testing.assert_array_equal(tile[:r0], terrain[:r0])


@pytest.mark.parametrize("change,field", [
    ({"kind": "sculpt"}, "kind"),
    ({"stroke": []}, "stroke"),
    ({"stroke": [[500.0, 3.0, 1.0]]}, "row"),
    ({"stroke": [[5.0, 3.0, 2.0]]}, "pressure"),
    ({"radius": 0}, "radius"),
    ({"strength": 1.5}, "strength"),
    ({"falloff": "cubic"}, "falloff"),
    ({"cell_size": -1.0}, "cell_size"),
    ({"steps": 0}, "steps"),
    ({"commit": "yes"}, "commit"),
    ({"style": "nowhere"}, "style"),
    ({"extra": 1}, "extra"),
])
def test_bad_brush_params_are_refused(brush_client, terrain, change, field):
    params = {"kind": "raise", "stroke": PATH, "radius": RADIUS, "cell_size": CELL, **change}
    with pytest.raises(BackendError) as err:
        brush_client.submit("brush", params, target="pytest-brush", arrays={"heights": terrain})
    assert err.value.code == "bad_params" and field in str(err.value)


def test_huge_window_is_refused_not_computed(brush_client):
    big = np.zeros((800, 800), np.float32)
    with pytest.raises(BackendError) as err:
        brush_client.submit("brush", {"kind": "raise", "stroke": [[400.0, 400.0, 1.0]], "radius": 256.0,
                                      "cell_size": CELL}, arrays={"heights": big})
    assert err.value.code == "bad_params" and "window" in str(err.value)


def test_brush_without_heights_is_refused(brush_client):
    with pytest.raises(BackendError) as err:
        brush_client.submit("brush", {"kind": "raise", "stroke": PATH, "radius": RADIUS, "cell_size": CELL})
    assert err.value.code == "bad_params" and "heights" in str(err.value)


def _disc(centre=(64, 60), radius=24.0) -> np.ndarray:
    rows, cols = np.mgrid[:RES, :RES]
    return (np.hypot(rows - centre[0], cols - centre[1]) <= radius).astype(np.float32)


def region(client: Client, heights: np.ndarray, kind: str, mask: np.ndarray, **params):
    params = {"kind": kind, "cell_size": CELL, "style": "desert_dunes", "seed": 1, **params}
    job = client.submit("brush", params, target="pytest-brush", arrays={"heights": heights, "mask": mask})
    return client.wait_result(job, timeout=120)


@pytest.mark.parametrize("kind", ["regenerate", "style_paint"])
def test_region_edit_changes_only_the_selection(brush_client, terrain, kind, tmp_path):
    mask = _disc()
    result = region(brush_client, terrain, kind, mask, world=str(tmp_path / "world"))
    r0, c0, r1, c1 = result.content["meta"]["window"]
    after, weight = result.arrays["heights"], result.arrays["weight"]
    before, selected = terrain[r0:r1, c0:c1], mask[r0:r1, c0:c1] > 0
    np.testing.assert_array_equal(weight[~selected], 0)  # the weight never leaves the selection
    np.testing.assert_array_equal(after[~selected], before[~selected])  # outside it: bit for bit
    assert (r0, c0, r1, c1) == (32, 28, 100, 96)  # the disc's box + 8 cells of context, on multiples of 4
    assert np.abs(after - before)[weight > 0.5].mean() > 1.0
    assert seam_ratio(after, weight) < 2.5
    (edit,) = WorldStore.open(tmp_path / "world").edits()  # logged as any stroke, the region as its weight
    assert edit.kind == kind and edit.params["edge"] == 8.0
    np.testing.assert_array_equal(WorldStore.open(tmp_path / "world").edit_deltas(edit)["weight"], weight)


def test_region_weight_rises_from_the_rim():
    from backend.editing import RegionStroke
    from backend.editing.brushes import footprint

    weight = footprint(RegionStroke("regenerate", _disc(radius=20.0), edge=8.0), (0, 0, RES, RES)).weight.numpy()
    rows, cols = np.mgrid[:RES, :RES]
    r = np.hypot(rows - 64, cols - 60)
    assert weight[r > 20].max() == 0 and weight[r < 11].min() == 1.0  # full weight 8 cells in from the rim
    rim = (r > 17) & (r <= 20)
    assert 0 < weight[rim].max() < 1  # the rim fades in


@pytest.mark.parametrize("change,arrays,field", [
    ({"kind": "raise"}, {}, "kind"),
    ({"stroke": PATH}, {}, "no stroke"),
    ({}, {"mask": np.ones((4, 4), np.float32)}, "shape"),
    ({}, {"mask": np.full((RES, RES), 2.0, np.float32)}, "[0, 1]"),
    ({}, {"mask": np.zeros((RES, RES), np.float32)}, "selects nothing"),
    ({"edge": 0}, {}, "edge"),
])
def test_bad_regions_are_refused(brush_client, terrain, change, arrays, field):
    params = {"kind": "regenerate", "cell_size": CELL, **change}
    with pytest.raises(BackendError) as err:
        brush_client.submit("brush", params, target="pytest-brush",
                            arrays={"heights": terrain, "mask": _disc(), **arrays})
    assert err.value.code == "bad_params" and field in str(err.value)


def test_world_log_survives_a_backend_restart(tiny_models, private_backend, terrain, tmp_path):
    """Strokes committed before a backend dies are in the world when a new backend opens it, and the log goes on."""
    world = str(tmp_path / "world")
    first = private_backend("--models-dir", str(tiny_models))
    client = Client(first.address)
    try:
        raised = brush(client, terrain, "raise", world=world)
    finally:
        client.close()
    first.kill()  # no shutdown: as if it crashed right after answering
    second = private_backend("--models-dir", str(tiny_models))
    client = Client(second.address)
    try:
        r0, c0, r1, c1 = raised.content["meta"]["window"]
        edited = terrain.copy()
        edited[r0:r1, c0:c1] = raised.arrays["heights"]  # what the artist's mesh holds now
        lowered = brush(client, edited, "lower", world=world, stroke=[[30.0, 30.0, 1.0]])
    finally:
        client.close()
    assert (raised.content["meta"]["edit_seq"], lowered.content["meta"]["edit_seq"]) == (0, 1)
    store = WorldStore.open(world)
    assert [e.kind for e in store.edits()] == ["raise", "lower"]
    tile = store.get_tile((0, 0)).field.heights
    q0, p0, q1, p1 = lowered.content["meta"]["window"]
    expected = edited.copy()
    expected[q0:q1, p0:p1] = lowered.arrays["heights"]
    np.testing.assert_array_equal(tile, expected)  # both strokes, nothing else


def test_model_grid_keeps_the_ground_in_place():
    """Mesh -> the models' cells -> mesh puts a ramp back where it was (away from the window's edges, where the
    low-pass repeats the edge): the samples share the corners. torch's antialiased bilinear moved it 1.6 cells
    (3.2 m); what is left is the bicubic's own ripple (Keys a = -0.75 does not keep a ramp straight)."""
    from backend.editing.scale import ModelGrid

    grid = ModelGrid.of((172, 440), 4000.0 / 511, 30.0)
    ramp = 2.0 * torch.arange(440, dtype=torch.float64)[None].expand(172, 440)  # 2 m per mesh cell
    back = grid.to_mesh(grid.to_model(ramp))
    off = (back - ramp)[8:-8, 8:-8]
    assert abs(float(off.mean())) < 0.05 and float(off.abs().max()) < 0.4


def test_flatten_grades_back_no_steeper_than_the_land():
    """Flatten's cut or fill stays under GRADE times the land's mean slope times radius (1 - t)^2 / 2: none at
    the stroke's rim, and a level far above a sloping land is reached only near the stroke's line."""
    from backend.editing.brushes import GRADE, Stroke, footprint, target

    x = torch.linspace(-1.0, 1.0, 128, dtype=torch.float64)[None].expand(64, 128).clone()  # a slope, network units
    stroke = Stroke("flatten", np.array([[32.0, 20.0, 1.0], [32.0, 108.0, 1.0]]), 16.0, 1.0)
    fp = footprint(stroke, (0, 0, 64, 128))
    change = target(stroke, x, fp, 2.0) - x  # the level above the highest ground
    bound = GRADE * (2.0 / 127) * stroke.radius * torch.clamp(1 - fp.distance / stroke.radius, min=0) ** 2 / 2
    assert (change.abs() <= bound + 1e-9).all() and float(change[fp.distance >= stroke.radius].abs().max()) == 0.0
    assert float(change.max()) > 0.9 * float(bound.max())


def test_drained_target_has_no_closed_basin_where_the_stroke_is_full():
    """A lowered bowl in a tilted window drains once its target is drained: where the weight is 1 no cell lies
    below what a priority flood would fill it to; nothing is lowered, and where the weight is 0 nothing moves."""
    from backend.editing.guided import drain_target
    from backend.simulation.flow import fill_depressions

    n = 64
    rows, cols = np.mgrid[0:n, 0:n].astype(np.float64)
    d = np.hypot(rows - n / 2, cols - n / 2)
    weight = np.clip(1.5 - d / 16, 0, 1)  # 1 in the core, fading to 0 at 24 cells
    bowl = 0.2 * rows - 30 * np.clip(1 - d / 20, 0, 1)  # a 30 m hole in a 0.2 m/cell slope
    drained = drain_target(bowl, weight, 0.1)
    basin = fill_depressions(torch.from_numpy(bowl), 0.0).numpy() - bowl
    left = fill_depressions(torch.from_numpy(drained), 0.0).numpy() - drained
    assert basin[weight >= 1].max() > 5  # the bowl held a basin where the stroke is full
    assert left[weight >= 1].max() < 1e-9
    assert (drained >= bowl).all()
    np.testing.assert_array_equal(drained[weight == 0], bowl[weight == 0])


def test_valley_path_bends_through_its_corners_and_a_dense_stroke_stays():
    """``rounded``: a corner of a drawn polyline becomes a bend inside it (its ends kept); a pen's stroke, its points
    a few cells apart, is left as it is."""
    from backend.editing.brushes import rounded

    corner = np.array([[0.0, 0.0, 1.0], [0.0, 100.0, 1.0], [100.0, 100.0, 1.0]])
    bend = rounded(corner, 30.0)
    np.testing.assert_array_equal(bend[[0, -1]], corner[[0, -1]])
    assert np.linalg.norm(bend[:, :2] - corner[1, :2], axis=1).min() > 10  # a mitre passes through the vertex
    dense = np.c_[np.r_[np.zeros(10), np.arange(1, 11) * 3.0], np.r_[np.arange(10) * 3.0, np.full(10, 27.0)],
                  np.ones(20)]
    np.testing.assert_array_equal(rounded(dense, 30.0), dense)


def test_valley_stream_falls_under_its_cap_without_cutting_to_its_lowest_point():
    """A valley's stream across a spur: it falls all the way, lies under ``stream_cap`` (half the design depth under
    the ground), and it is fitted (the hollow before the spur partly filled, up to that cap), not cut down to the
    level the line reached before the spur: it runs less deep under the spur than that cut."""
    from backend.editing.brushes import Stroke, burn_stream, descending, stream_cap

    cols = np.arange(120, dtype=np.float64)
    ground = np.tile(200 - cols + 60 * np.exp(-((cols - 70) / 8) ** 2), (21, 1))  # a ramp with a spur on it
    floor = ground - 20  # the valley's target: 20 m under the ground
    stroke = Stroke("valley", np.array([[10.0, 0.0, 1.0], [10.0, 119.0, 1.0]]), 10.0, 1.0)
    window = (0, 0, 21, 120)
    cap = stream_cap(stroke, floor, ground, window)
    line = burn_stream(stroke, floor, window, np.ones_like(floor), 0.1, 3.0, cap)[10]
    assert (np.diff(line) < 0).all()
    assert (line <= cap + 1e-9).all()
    cut = descending(floor[10], 0.1)
    assert (ground[10] - line).max() < (ground[10] - cut).max() - 5  # 55 m under the spur's top, not 65


def test_valley_stream_over_high_ground_heads_at_a_divide_instead_of_a_gorge():
    """A valley stroke across a ridge higher than both its ends: its stream rises to one divide on the ridge and
    falls from it to both ends by at least the fall asked, with no pit, and its deepest cut under the target is a
    small share of the ridge (falling all the way, ``descending``, cuts the ridge down to the far end's level)."""
    from backend.editing.brushes import Stroke, burn_stream, descending, divided, stream_cap

    cols = np.arange(160, dtype=np.float64)
    ridge = 300 * np.exp(-((cols - 90) / 25) ** 2)  # 300 m over ground that falls 0.5 m a cell
    ground = np.tile(200 - 0.5 * cols + ridge + 5 * np.sin(cols / 3), (21, 1))
    floor = ground - 40
    stroke = Stroke("valley", np.array([[10.0, 0.0, 1.0], [10.0, 159.0, 1.0]]), 10.0, 1.0)
    window = (0, 0, 21, 160)
    cap = stream_cap(stroke, floor, ground, window)
    line = burn_stream(stroke, floor, window, np.ones_like(floor), 0.1, 3.0, cap)[10]
    top = int(np.argmax(line))
    assert 60 < top < 120, top  # on the ridge, not at an end
    assert (np.diff(line[:top + 1]) > 0).all() and (np.diff(line[top:]) < 0).all()
    assert (floor[10] - line).max() < 40  # the cut under the target is the wiggle's, not the ridge's
    assert (floor[10] - descending(floor[10], 0.1)).max() > 250  # what falling all the way would have cut

    # a line that falls all the way keeps falling: its divide at (or a wiggle from) its higher end
    falling = 100 - cols + 3 * np.sin(cols / 2)
    fitted = divided(falling, 0.1)
    assert np.argmax(fitted) < 5 and (np.diff(fitted[5:]) < 0).all()


def test_level_kept_cancels_the_weighted_mean_change():
    from backend.editing.guided import level_kept
    torch.manual_seed(0)
    before, sampled = torch.randn(1, 1, 8, 8), torch.randn(1, 1, 8, 8) + 3.0
    weight = torch.linspace(0, 1, 64).reshape(1, 1, 8, 8)
    kept = level_kept(sampled, before, weight)
    assert abs(float(((kept - before) * weight).sum())) < 1e-4
    torch.testing.assert_close(kept[weight == 0], sampled[weight == 0])  # nothing shifted where the stroke is not


@pytest.fixture(scope="module")
def gen():
    """The shipped learned models, loaded once for the tests that judge edits on their terrain."""
    from backend.generators import DiffusionGenerator
    return DiffusionGenerator("cpu")


def alpine_world(gen, res: int, seed: int) -> np.ndarray:
    """The shipped models' 4 km, 800 m alpine world at ``res``² (dry: no sea), as an artist starts one."""
    from backend.generators import GenerateRequest
    request = GenerateRequest.from_params({"generator": "diffusion", "resolution": res, "size_m": 4000.0,
                                           "height_m": 800.0, "seed": seed, "style_weights": {"alpine": 1.0},
                                           "sliders": {"sea_level": 0.0}})
    return gen.generate(request, lambda *a: None).heights


def test_regenerated_patch_fades_in_without_an_outline(gen):
    """On the shipped models' 4 km alpine world, the ground where a regenerated patch meets the land (0.6-0.8 of the
    radius) is no rougher than the land around it (1.3x at most; blended over the rim's last quarter it was over 2x:
    the capsule outline in the README's hillshade), and the patch keeps the land's level."""
    from backend.editing import Stroke, apply_stroke
    from backend.editing.brushes import footprint
    res, size_m, radius = 256, 4000.0, 20.0
    world = alpine_world(gen, res, 5)
    cell = size_m / (res - 1)
    ring, level = [], []
    for points in ([[120.0, 35.0], [132.0, 75.0]], [[190.0, 150.0], [210.0, 210.0]], [[50.0, 150.0], [75.0, 190.0]]):
        stroke = Stroke("regenerate", np.array([p + [1.0] for p in points]), radius, 1.0)
        edit = apply_stroke(gen.base, gen.superres, world, stroke, {"alpine": 1.0}, {"sea_level": 0.0}, 2.0, cell, 4)
        r0, c0, r1, c1 = edit.window
        after = world.copy()
        after[r0:r1, c0:c1] = edit.heights
        d = footprint(stroke, (0, 0, res, res)).distance.numpy()[1:-1, 1:-1] / radius
        before_lap, after_lap = _laplacian(world.astype(np.float64)), _laplacian(after.astype(np.float64))
        ring.append(after_lap[(d >= 0.6) & (d < 0.8)].mean() / before_lap[(d >= 1.0) & (d < 1.5)].mean())
        level.append(float((after - world)[1:-1, 1:-1][d < 0.5].mean()))
    assert max(ring) < 1.3, ring
    assert max(abs(v) for v in level) < 5.0, level  # metres, on 800 m of relief


def test_valleys_down_slopes_keep_the_floor_the_land_wore(gen):
    """On the shipped models' 4 km alpine world at 512², valleys carved straight down three mountainsides (their
    steepest descents, the heights blurred over 12 cells) read as the land around them: their cores (within half the
    trough) are on average no more than 1.25x as rough as the land around the circle (std of the Laplacian; with the
    floor eased onto the stream's line after the erosion stage as well as before, a canal's flat band between uniform
    walls: 1.41x), and each stream still falls all the way: no pit on its path."""
    from backend.editing import Stroke, apply_stroke
    from backend.editing.brushes import SHAPE_SHARE, nearest_on_path, rounded
    res, size_m, radius = 512, 4000.0, 68.0
    trough = SHAPE_SHARE * radius
    world = alpine_world(gen, res, 7)
    before, cell = world.astype(np.float64), size_m / (res - 1)
    paths = ([[260.0, 410.0], [282.0, 355.0], [288.0, 295.0], [302.0, 237.0], [296.0, 182.0], [246.0, 150.0]],
             [[185.0, 310.0], [206.0, 256.0], [227.0, 200.0], [240.0, 146.0]],
             [[385.0, 435.0], [410.0, 383.0], [397.0, 325.0], [394.0, 266.0], [385.0, 211.0], [331.0, 185.0]])
    ratios = []
    for path in paths:
        stroke = Stroke("valley", np.array([p + [1.0] for p in path]), radius, 0.8)
        edit = apply_stroke(gen.base, gen.superres, world, stroke, {"alpine": 1.0}, {"sea_level": 0.0}, 3.0, cell, 2)
        r0, c0, r1, c1 = edit.window
        after = before.copy()
        after[r0:r1, c0:c1] = edit.heights
        carved = rounded(stroke.points, radius)
        arc = np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(carved[:, :2], axis=0), axis=1))]
        d, at, _ = nearest_on_path(np.c_[carved[:, :2], arc / arc[-1]], (0, 0, res, res))
        lap = after[1:-1, 2:] + after[1:-1, :-2] + after[2:, 1:-1] + after[:-2, 1:-1] - 4 * after[1:-1, 1:-1]
        inner = d[1:-1, 1:-1]
        ratios.append(lap[inner < trough / 2].std() / lap[(inner > radius) & (inner < 2 * radius)].std())
        assert (before - after)[d < trough / 2].mean() > 5.0, "the valley cut nothing"
        n = int(arc[-1])
        floor = np.full(n, np.inf)
        on = d < 0.75
        np.minimum.at(floor, np.minimum((at[on] * n).astype(int), n - 1), after[on])
        floor = floor[np.isfinite(floor)]
        top = int(np.argmax(floor))
        assert np.diff(floor[:top + 1]).min(initial=1.0) > 0 and np.diff(floor[top:]).max(initial=-1.0) < 0, \
            "the valley's stream has a pit"
    print("valleys down slopes: core over ring", [round(float(r), 3) for r in ratios])
    assert np.mean(ratios) < 1.25, ratios


def test_painted_dunes_stand_as_tall_as_dunes_on_a_mountain_world(gen):
    """Dunes painted at full strength on the shipped models' 4 km, 800 m alpine world move the ground by a dune's
    height (less than the style's corpus relief, 120 m at most, end to end) and their texture (heights over a 4-cell
    blur) is as tall as the land's there (within 1.3x): the models sample in the world's units, and scaled by them
    the patch moved the ground over 1000 m end to end, its texture 9x as tall as the land's (the blob in the
    README's hillshade)."""
    from backend.editing import Stroke, apply_stroke
    from backend.editing.brushes import footprint
    from backend.simulation.style_specs import STYLES
    res, size_m = 256, 4000.0
    world = alpine_world(gen, res, 5)
    stroke = Stroke("style_paint", np.array([[110.0, 195.0, 1.0], [145.0, 210.0, 1.0]]), 40.0, 1.0)
    edit = apply_stroke(gen.base, gen.superres, world, stroke, {"desert_dunes": 1.0}, {"sea_level": 0.0}, 3.0,
                        size_m / (res - 1), 5)
    r0, c0, r1, c1 = edit.window
    before = world.astype(np.float64)
    after = before.copy()
    after[r0:r1, c0:c1] = edit.heights
    core = footprint(stroke, (0, 0, res, res)).distance.numpy() < stroke.radius / 2
    texture = [(h - ndi.gaussian_filter(h, 4))[core].std() for h in (after, before)]
    print("painted dunes: change", round(float((after - before).min()), 1), "..",
          round(float((after - before).max()), 1), "m; texture", [round(float(t), 2) for t in texture], "m")
    assert 5.0 < np.ptp(after - before) < STYLES["desert_dunes"].landscape.relief_m.high
    assert 1 / 1.3 < texture[0] / texture[1] < 1.3


def outline(after: np.ndarray, distance: np.ndarray, radius: float) -> float:
    """How much of the ground's curvature follows the footprint's outline: over rings 0.05 of the radius wide from
    0.3 to 1.0 of it, the RMS of each ring's mean Laplacian over the mean of their stds (land: 0.1-0.2; a stamped
    capsule, a rim line and round end caps, 0.4-0.6)."""
    lap = after[1:-1, 2:] + after[1:-1, :-2] + after[2:, 1:-1] + after[:-2, 1:-1] - 4 * after[1:-1, 1:-1]
    t = distance[1:-1, 1:-1] / radius
    rings = [lap[(t >= a) & (t < a + 0.05)] for a in np.arange(0.3, 0.999, 0.05)]
    return float(np.sqrt(np.mean([r.mean() ** 2 for r in rings])) / np.mean([r.std() for r in rings]))


@pytest.mark.parametrize("kind", ["valley", "raise"])
def test_displacing_strokes_leave_no_outline_of_their_circle(gen, kind):
    """A valley and a raise shaped 34 cells either side of their path on the shipped models' 4 km alpine world (512²,
    7.8 m cells: under 9 of the models' cells) leave no outline: shaped over the inner half of a circle twice that
    wide and blended over the rest, the curvature that follows the footprint's outline (``outline``) is under 0.3
    (the land under the same rings 0.17). Shaped over their whole 34-cell circle, the blend drew a capsule around
    the valley: 0.57 (the raise 0.24)."""
    from backend.editing import Stroke, apply_stroke
    from backend.editing.brushes import SHAPE_SHARE, nearest_on_path, rounded
    res, size_m, radius = 512, 4000.0, 34.0 / SHAPE_SHARE
    world = alpine_world(gen, res, 5).astype(np.float64)
    path = np.array([[360.0, 260.0, 1.0], [328.0, 310.0, 1.0], [292.0, 358.0, 1.0], [250.0, 401.0, 1.0],
                     [193.0, 416.0, 1.0], [152.0, 423.0, 1.0]])
    stroke = Stroke(kind, path, radius, 0.8)
    edit = apply_stroke(gen.base, gen.superres, world.astype(np.float32), stroke, {"alpine": 1.0},
                        {"sea_level": 0.0}, 3.0, size_m / (res - 1), 2)
    r0, c0, r1, c1 = edit.window
    after = world.copy()
    after[r0:r1, c0:c1] = edit.heights
    drawn = rounded(path, radius) if kind == "valley" else path
    distance, _, _ = nearest_on_path(np.c_[drawn[:, :2], np.zeros(len(drawn))], (0, 0, res, res))
    measured = outline(after, distance, radius), outline(world, distance, radius)
    print(kind, "outline after, land", [round(v, 3) for v in measured])
    assert np.abs(after - world).max() > 5.0, "the stroke moved nothing"
    assert measured[0] < 0.3, measured
