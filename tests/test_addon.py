"""The Blender add-on: numpy grid helpers in plain pytest, and real Blender (bpy) scenarios in
subprocesses against a live backend, installed from the zip that build_addon.py makes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import scipy.ndimage as ndi

from conftest import addon_module
from protocol.client import Client

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = Path(__file__).resolve().parent / "blender_scenarios"
# The oldest and the newest supported Blender: bpy 4.2 LTS in this Python 3.11 (the test extra pins it), and
# bpy 5.1 in .venv313 (Python 3.13, only bpy: zmq and msgpack come from the zip's wheels). scripts/test.sh
# makes both. The backend always runs here, in Python 3.11, where torch is.
BLENDERS = {"oldest": ((4, 2), sys.executable),
            "newest": ((5, 1), os.environ.get("WORLDSCULPT_NEWEST_BLENDER_PYTHON",
                                              str(ROOT / ".venv313" / "bin" / "python")))}


grid = addon_module("grid")


# -- grid topology (no Blender) ------------------------------------------------------------------

@pytest.mark.parametrize("h,w", [(2, 2), (3, 5), (17, 9)])
def test_grid_topology_is_consistent(h, w):
    corners = grid.quad_corners(h, w).reshape(-1, 4)
    edges = grid.edges(h, w)
    corner_edges = grid.corner_edges(h, w).reshape(-1, 4)
    assert len(corners) == (h - 1) * (w - 1)
    assert len(edges) == h * (w - 1) + (h - 1) * w
    assert len({tuple(sorted(e)) for e in edges.tolist()}) == len(edges)  # no duplicates
    # the edge stored for each corner joins that corner to the next one of its quad
    for quad, quad_edges in zip(corners, corner_edges):
        for k in range(4):
            assert sorted(edges[quad_edges[k]]) == sorted((quad[k], quad[(k + 1) % 4]))
    # counter-clockwise seen from +z (normals up): positive signed area in x/y
    xy = grid.positions(np.zeros((h, w), np.float32), 2.0)[:, :2]
    p = xy[corners]
    area = 0.5 * np.sum(p[:, :, 0] * np.roll(p[:, :, 1], -1, 1) - np.roll(p[:, :, 0], -1, 1) * p[:, :, 1], 1)
    np.testing.assert_allclose(area, 4.0)


def test_positions_axes_and_centre():
    heights = np.arange(12, dtype=np.float32).reshape(3, 4)  # row 0 north, column 0 west
    pos = grid.positions(heights, 10.0).reshape(3, 4, 3)
    assert pos.dtype == np.float32
    np.testing.assert_array_equal(pos[..., 2], heights)
    np.testing.assert_array_equal(pos[0, :, 0], [-15, -5, 5, 15])  # x east, centred
    np.testing.assert_array_equal(pos[:, 0, 1], [10, 0, -10])  # y north: row 0 is the top
    buffer = grid.PositionBuffer()
    np.testing.assert_array_equal(buffer(heights, 10.0), pos.reshape(-1, 3))
    np.testing.assert_array_equal(buffer(heights * 2, 10.0)[:, 2], (heights * 2).ravel())


@pytest.mark.parametrize("bad", [np.zeros(5), np.zeros((1, 4)), np.full((2, 2), np.nan)])
def test_bad_heights_are_refused(bad):
    with pytest.raises(ValueError):
        grid.check_heights(bad, 1.0)


# -- real Blender ---------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def addon_zip(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, str(ROOT / "build_addon.py"), "--platform", "current", "--out", str(out)],
                   check=True, cwd=ROOT, capture_output=True, timeout=300)
    (zip_path,) = out.glob("worldsculpt-*.zip")
    return zip_path


@pytest.fixture(params=list(BLENDERS))
def blender(request) -> tuple[tuple[int, int], str]:
    """Run the scenario in the oldest and in the newest Blender: (its major.minor, its Python)."""
    version, python = BLENDERS[request.param]
    if not Path(python).exists():
        pytest.fail(f"no Python for Blender {version}: {python} is missing (scripts/test.sh makes it)")
    return version, python


def _check_version(results: dict, blender: tuple[tuple[int, int], str]) -> None:
    assert tuple(results["blender_version"][:2]) == blender[0], f"ran in Blender {results['blender_version']}"


def _blender_env(tmp_path: Path) -> dict[str, str]:
    """Keep Blender's user config, extensions and installed wheels inside the test's temp folder."""
    return dict(os.environ, BLENDER_USER_RESOURCES=str(tmp_path / "blender-user"), PYTHONUNBUFFERED="1")


def _results(stdout: str) -> dict:
    line = next(l for l in stdout.splitlines() if l.startswith("RESULTS "))
    return json.loads(line[len("RESULTS "):])


def _scenario(name: str, addon_zip: Path, address: str, tmp_path: Path, *args: str, timeout: float = 240,
              python: str = sys.executable) -> dict:
    """Run one Blender scenario against the backend at ``address``; its RESULTS line, once it passed."""
    run = subprocess.run([python, str(SCENARIOS / name), str(addon_zip), address, str(tmp_path), *args],
                         env=_blender_env(tmp_path), capture_output=True, text=True, timeout=timeout)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return _results(run.stdout)


def _expected_heights(client: Client, params: dict) -> np.ndarray:
    job_id = client.submit("generate", params, target="pytest")
    return client.wait_result(job_id, timeout=60).arrays["heights"]


def test_generate_undo_and_disable_in_blender(addon_zip, backend, client, tmp_path, blender):
    results = _scenario("generate.py", addon_zip, backend.address, tmp_path, timeout=120, python=blender[1])
    _check_version(results, blender)
    assert {"zmq", "msgpack"} <= set(results["installed_wheels"])  # Blender unpacked the bundled wheels
    assert max(results["operator_return_s"]) < 0.5  # Generate submits and returns; it never waits for the job
    params = json.loads((tmp_path / "params.json").read_text())
    # the menus list the backend's choices, each at its default until the artist picks another, which is sent
    defaults = {menu: m["default"] for menu, m in backend.hello.content["menus"].items()}
    assert results["menus_after_connect"] == dict(defaults, export_format=sorted(defaults["export_format"]))
    assert [params[step]["erosion_stage"] for step in ("first", "second", "third")] == ["light", "light", "mature"]
    for step in ("first", "second", "third"):
        heights = _expected_heights(client, params[step])
        mesh = np.load(tmp_path / f"{step}.npy")
        assert mesh.shape == (heights.size, 3)
        np.testing.assert_array_equal(mesh[:, 2], heights.astype(np.float32).ravel())  # exact, float32
        h, w = heights.shape
        cell = params[step]["size_m"] / (w - 1)
        np.testing.assert_allclose(mesh[:, 0].reshape(h, w)[0], (np.arange(w) - (w - 1) / 2) * cell, atol=1e-3)
        assert mesh[0, 1] > 0 > mesh[-1, 1]  # row 0 is north (+y)
    # the panel says what relief Generate makes (Highest relief scaled by Elevation range), and that 48 cells
    # over 1200 m (25.5 m each) are finer than the models' 30 m detail
    (relief,) = [label for label in results["labels_first"] if label.startswith("Relief with Elevation range")]
    assert abs(float(relief.split(": ")[1].split(" m")[0]) - results["relief_first_m"]) <= 1.0, relief
    assert any("finer than the models' 30 m detail" in label for label in results["labels_first"])
    # material masks as vertex attributes, in range, shading the terrain's own material
    masks = dict(np.load(tmp_path / "masks.npz"))
    assert set(masks) == {"slope", "flow", "rock", "scree", "soil", "grass", "sand", "snow"}
    for name, values in masks.items():
        assert values.shape == (48 * 48,) and values.min() >= 0.0 and values.max() <= 1.0, name
    layers = ("rock", "scree", "soil", "grass", "sand", "snow")
    np.testing.assert_allclose(sum(masks[k] for k in layers), 1.0, atol=1e-4)  # the surface weights share out
    slope = masks["slope"] * 90.0
    assert slope[masks["rock"] > 0.5].min() > slope[masks["grass"] > 0.5].max()  # cliffs are rock, gentle is grass
    assert results["material"] == "Worldsculpt Terrain"
    assert results["material_attributes"] == sorted(f"ws_{k}" for k in layers)
    water = results["water"]
    assert water["parent"] == "Test Terrain" and water["material"] == "Worldsculpt Water"
    assert sorted(water["corners"]) == sorted([[x, y, 0.0] for x in (-600.0, 600.0) for y in (-600.0, 600.0)])
    assert results["water_after_off"] is False
    # status lives in the session: undo leaves it, and a reopened file starts blank
    assert results["status_after_undo"] == results["status_before_undo"] and results["status_before_undo"].startswith("Done")
    assert results["device_after_undo"] != ""
    reopened = _scenario("reopen.py", addon_zip, str(tmp_path / "scene.blend"), tmp_path / "reopen", python=blender[1])
    assert "Test Terrain" in reopened["objects"]
    assert (reopened["status"], reopened["device"], reopened["connected"], reopened["progress"]) == \
        ("Not connected", "", False, 0.0)
    assert not any(label.startswith(("Done", "Device:")) for label in reopened["labels"]), reopened["labels"]
    first, second = np.load(tmp_path / "first.npy"), np.load(tmp_path / "second.npy")
    assert not np.array_equal(first, second)
    assert results["undo"] == "{'FINISHED'}"
    np.testing.assert_array_equal(np.load(tmp_path / "undone.npy"), first)


def _converse(script: str, args: list[str], tmp_path: Path, answers: dict[str, Callable[[], str]],
              timeout: float) -> dict:
    """Run a scenario that prints prompts (KILL, RESTART) and waits for a line after each: answer them in
    turn (the callables act, e.g. kill the backend, and return the line); its RESULTS once it ends."""
    blender = subprocess.Popen([sys.executable, str(SCENARIOS / script), *args], env=_blender_env(tmp_path),
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pending = dict(answers)
    try:
        for line in blender.stdout:
            if line.strip() in pending:
                blender.stdin.write(pending.pop(line.strip())() + "\n")
                blender.stdin.flush()
                if not pending:
                    break
        stdout, stderr = blender.communicate(timeout=timeout)
    finally:
        if blender.poll() is None:
            blender.kill()
    assert blender.returncode == 0, stdout[-3000:] + stderr[-3000:]
    return _results(stdout)


def test_killed_backend_leaves_mesh_intact(addon_zip, private_backend, tmp_path):
    proc = private_backend()

    def kill() -> str:
        proc.kill()
        return "killed"

    results = _converse("disconnect.py", [str(addon_zip), proc.address, "1024"], tmp_path, {"KILL": kill}, 60)
    assert results["disconnect_noticed_s"] < 10
    assert "disconnected" in results["last_error"]


def test_addon_starts_and_stops_its_own_backend(addon_zip, tmp_path):
    from conftest import free_port

    address = f"tcp://127.0.0.1:{free_port()}"
    command = Path(sys.executable).parent / "worldsculpt"  # what `pip install` of this project made
    run = subprocess.run([sys.executable, str(SCENARIOS / "local_backend.py"), str(addon_zip), address,
                          str(command)], env=_blender_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    results = _results(run.stdout)
    assert results["submit_to_frozen_s"] < 0.1 and results["status_after_thaw"].startswith("Done")  # never waits
    assert results["exit_noticed_s"] < 1.0  # the process's exit, not the 5 s heartbeat timeout
    assert results["status_after_kill"].startswith("Disconnected: local backend killed by signal 9"), results
    assert "serving" not in results["status_after_kill"]


def test_export_from_blender(addon_zip, backend, tmp_path, blender):
    from PIL import Image

    results = _scenario("export.py", addon_zip, backend.address, tmp_path, timeout=120, python=blender[1])
    _check_version(results, blender)
    assert results["export_status"].startswith("Exported"), results
    # Export with Blender: a new name beside the backend's files, never over them; the node named as the object
    assert results["glb_status"] == "Wrote scenario_blender.glb" and results["second_glb_status"] == "Wrote scenario_blender_2.glb"
    assert results["glb_nodes"] == ["Export Terrain"] and results["names_after_export"][0] == "Export Terrain"
    # the sidecars state the world size exactly (800 m over 40 cells of 800/39 m; float32 vertices said 799.99988)
    for sidecar in ("scenario.png.json", "scenario_mesh.json"):
        assert json.loads((tmp_path / "backend" / sidecar).read_text())["world_size_m"] == [800.0, 800.0], sidecar
    assert results["glb_vertices"][0] == results["glb_vertices"][1]
    np.testing.assert_allclose(results["glb_bounds"], results["world_bounds"], atol=1e-2)
    heights = np.load(tmp_path / "heights.npy")
    png = np.asarray(Image.open(tmp_path / "backend" / "scenario.png"), dtype=np.float64)
    lo, hi = float(heights.min()), float(heights.max())
    assert png.shape == heights.shape
    assert np.abs(lo + png / 65535.0 * (hi - lo) - heights).max() <= (hi - lo) / 65535.0


def test_every_brush_through_the_operator_with_undo(addon_zip, learned_backend, tmp_path, blender):
    from test_brushes import PATH, RADIUS, _direction

    from backend.editing import seam_ratio
    from backend.editing.brushes import SHAPE_SHARE, footprint, Stroke

    results = _scenario("brush.py", addon_zip, learned_backend.address, tmp_path, json.dumps(PATH), str(RADIUS),
                        python=blender[1])
    _check_version(results, blender)
    assert set(results["undo"]) == {"{'FINISHED'}"}
    assert results["cursor_radii"] == {"raise": [100.0, 100.0 * SHAPE_SHARE], "smooth": [100.0]}
    before = np.load(tmp_path / "before.npy").reshape(128, 128)
    fp = footprint(Stroke("raise", np.array(PATH), RADIUS + 1, 1.0), (0, 0, 128, 128))  # a cell of slack
    untouched = fp.distance.numpy() > RADIUS + 1
    for kind, took in results["latency_s"].items():
        after = np.load(tmp_path / f"after_{kind}.npy").reshape(128, 128)
        np.testing.assert_array_equal(after[untouched], before[untouched])  # outside the stroke: exact
        np.testing.assert_array_equal(np.load(tmp_path / f"undone_{kind}.npy").reshape(128, 128), before)
        weight = footprint(Stroke(kind, np.array(PATH), RADIUS, 1.0), (0, 0, 128, 128)).weight.numpy()
        assert seam_ratio(after, weight) < 2.5, kind
        if kind not in ("regenerate", "style_paint"):
            measure, was = _direction(kind, before, after, weight, [0, 0, 128, 128], float(before[64, 30]))
            assert measure > was, f"{kind}: {measure} <= {was}"
        else:
            assert np.abs(after - before)[weight > 0.5].mean() > 1.0
    from backend.world.store import WorldStore

    # every stroke was undone in Blender, then a raise was undone and redone: the world's history follows
    world = WorldStore.open(tmp_path / "world")
    kinds = list(results["latency_s"])
    assert [e.kind for e in world.edits()] == [k for kind in kinds for k in (kind, "undo")] + ["raise", "undo", "redo"]
    assert [e.kind for e in world.active_edits()] == ["raise"]
    assert results["undo_redo"] == ["{'FINISHED'}", "{'FINISHED'}"]
    assert results["status_after_undos"] == "Edit log: 1 undone, 0 redone"
    assert results["status_after_redo"] == "Edit log: 0 undone, 1 redone"
    redone = np.load(tmp_path / "redone.npy").reshape(128, 128)
    np.testing.assert_array_equal(redone, np.load(tmp_path / "after_last.npy").reshape(128, 128))
    np.testing.assert_array_equal(world.get_tile((0, 0)).field.heights, redone)  # the world's tile is Blender's


def test_curve_to_terrain_ridge_river_cliff_with_undo(addon_zip, learned_backend, tmp_path):
    from test_curves import CURVE, WIDTH

    from backend.editing.brushes import nearest_on_path
    from backend.editing.curves import RIVER_DEPTH, channel_cells

    results = _scenario("curve.py", addon_zip, learned_backend.address, tmp_path, json.dumps(CURVE), str(WIDTH))
    assert set(results["undo"]) == {"{'FINISHED'}"}
    assert max(v for k, v in results["latency_s"].items() if k.endswith("_operator_s")) < 0.5  # never waits
    before = np.load(tmp_path / "before.npy").reshape(128, 128)
    cells = np.load(tmp_path / "cells.npy")  # the evaluated curve on the grid, as the operator sent it
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(cells, axis=0), axis=1))])
    d, u, side = nearest_on_path(np.c_[cells, s / s[-1]], (0, 0, 128, 128))
    on = d < 1
    for kind in ("ridge", "river", "cliff"):
        after = np.load(tmp_path / f"after_{kind}.npy").reshape(128, 128)
        np.testing.assert_array_equal(after[d > WIDTH / 2 + 1], before[d > WIDTH / 2 + 1])  # outside: exact
        np.testing.assert_array_equal(np.load(tmp_path / f"undone_{kind}.npy").reshape(128, 128), before)
        rise = float(after[on].mean() - before[on].mean())
        if kind == "ridge":  # metres along the curve: the operator's path and the direction; the ridge's look on
            # the shipped models is test_natural_edits's (the tiny models' erosion redraws part of the crest: 9.95 m
            # from the seeded tiny models, 4.6-15 m from the unseeded ones before)
            assert rise > 5.0, rise
        elif kind == "river":
            bed = d < channel_cells(WIDTH / 2)
            heights = after[bed][np.argsort(u[bed], kind="stable")]
            steps = np.diff(heights) * (1 if heights[0] >= heights[-1] else -1)
            assert (steps <= 0).all()  # the bed runs downhill along the curve
            # lowered by a fifth of its depth or more (m) where the ground stands above the mouth: a bed that falls
            # all the way crosses a hollow below its mouth as a causeway (the tiny models' terrain has one, 23 m
            # deep, mid-curve), and the tiny models' erosion stage refills some of the bed
            depth = 0.8 * RIVER_DEPTH * WIDTH * 2000.0 / 127
            above = on & (before > min(heights[0], heights[-1]) + depth)
            lowered = float((after - before)[above].mean())
            # (a fifth of the curve stands that high on the tiny models of corpus v3: enough cells to measure)
            assert above.sum() > on.sum() / 8 and lowered < -0.2 * depth, (lowered, above.sum(), on.sum())
        else:
            band = (d > 2) & (d < WIDTH / 4)
            step = lambda h: float(h[band & (side > 0)].mean() - h[band & (side < 0)].mean())  # noqa: E731
            assert step(after) > step(before) + 10.0


def _style_distance(patch: np.ndarray, references: list[np.ndarray]) -> float:
    """Distance in the style classifier's z-scored realism features from a patch to the mean of reference patches."""
    from backend.metrics.reference import load_classifier
    from backend.metrics.style_classifier import feature_vector
    from backend.terrain import Heightfield

    clf = load_classifier()
    z = lambda h: np.nan_to_num((feature_vector(Heightfield(h, 30.0)) - clf.mean) / clf.std)  # noqa: E731
    return float(np.linalg.norm(z(patch) - np.mean([z(r) for r in references], axis=0)))


def test_style_paint_restyle_and_reference_style_in_blender(addon_zip, backend, client, tmp_path):
    from PIL import Image

    from backend.editing import RegionStroke, seam_ratio
    from backend.editing.brushes import Stroke, footprint
    from backend.simulation.style_specs import typical_relief_m
    from backend.simulation.styles import simulate
    from backend.world.store import WorldStore

    dunes = simulate("desert_dunes", seed=3, size=128, cell_size=30.0).heights
    dunes = (dunes - np.quantile(dunes, 0.05)).astype(np.float32)  # 5 % under the sea
    relief = float(np.ptp(dunes))
    np.save(tmp_path / "dunes.npy", dunes)
    Image.fromarray(np.round((dunes - dunes.min()) / relief * 65535).astype(np.uint16)).save(tmp_path / "dunes.png")
    run = subprocess.run([sys.executable, str(SCENARIOS / "style.py"), str(addon_zip), backend.address, str(tmp_path),
                          str(tmp_path / "dunes.npy"), str(tmp_path / "dunes.png"), str(relief)],
                         env=_blender_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    results = _results(run.stdout)
    n = 256
    before = np.load(tmp_path / "before.npy").reshape(n, n)
    assert results["undo"] == ["{'FINISHED'}"] * 3
    for name in ("painted", "selection", "group"):  # each edit is one undo step back to the terrain before it
        np.testing.assert_array_equal(np.load(tmp_path / f"undone_{name}.npy").reshape(n, n), before)

    # style paint: the texture of the stroke's core (heights over a 4-cell blur) is measurably closer to desert dunes
    # at their own relief (tens of metres: the paint draws a style at its typical relief, not the world's 1500 m),
    # the rest exactly as it was
    painted = np.load(tmp_path / "painted.npy").reshape(n, n)
    path = np.array([[128.0, 60.0, 1.0], [128.0, 196.0, 1.0]])
    untouched = footprint(Stroke("style_paint", path, 61.0, 1.0), (0, 0, n, n)).distance.numpy() > 61.0
    np.testing.assert_array_equal(painted[untouched], before[untouched])
    core = (slice(112, 144), slice(80, 176))
    texture = lambda h: (h - ndi.gaussian_filter(h.astype(np.float64), 4))[core]  # noqa: E731
    references = []
    for seed in (11, 12):  # desert dunes the same models make at their own relief, cut at the same place
        job = client.submit("generate", {"style": "desert_dunes", "resolution": n, "size_m": 30.0 * (n - 1),
                                         "height_m": typical_relief_m({"desert_dunes": 1.0}), "seed": seed,
                                         "generator": "diffusion"}, target="pytest")
        references.append(texture(client.wait_result(job, timeout=120).arrays["heights"]))
    was, now = _style_distance(texture(before), references), _style_distance(texture(painted), references)
    print("style paint: texture's distance to desert dunes", round(was, 2), "->", round(now, 2))
    assert now < 0.85 * was, f"texture's distance to desert dunes {was:.2f} -> {now:.2f}"

    # restyle: only the selection (or the group) changes, it blends in, and each is logged
    for name in ("selection", "group"):
        region = np.load(tmp_path / f"{name}.npy")
        after = np.load(tmp_path / f"restyled_{name}.npy").reshape(n, n)
        np.testing.assert_array_equal(after[~region], before[~region])
        weight = footprint(RegionStroke("regenerate", region.astype(np.float32)), (0, 0, n, n)).weight.numpy()
        assert np.abs(after - before)[weight > 0.5].mean() > 1.0, name
        assert seam_ratio(after, weight) < 2.5, name
    assert results["mode_after_restyle"] == "OBJECT" and results["selection_kept"]
    assert results["missing_group"].startswith("error") and "no vertex group 'nowhere'" in results["missing_group_status"]
    world = WorldStore.open(tmp_path / "world")  # each was undone in Blender: so in the world
    assert [e.kind for e in world.edits()] == ["style_paint", "undo", "regenerate", "undo", "style_paint", "undo"]
    assert world.active_edits() == []

    # reference style: the object and the image file both say desert dunes; the panel takes what the backend says
    job = client.submit("style_from", {"cell_size": 30.0}, target="pytest", arrays={"heights": dunes})
    expected = client.wait_result(job, timeout=60).content["meta"]
    from_object = results["from_object"]
    assert results["object_status"].startswith("Reference: desert dunes"), results["object_status"]
    for style, weight in expected["style_weights"].items():
        assert from_object["weights"][style] == pytest.approx(weight, abs=1e-6)
    for slider, value in expected["sliders"].items():
        assert from_object["sliders"][slider] == pytest.approx(value, abs=1e-6)
    relief_m = from_object["height_m"] * (0.2 + 0.8 * from_object["sliders"]["elevation_range"])
    assert relief_m == pytest.approx(relief, rel=1e-4)  # Generate would make the reference's relief
    assert results["undo_reference"] == "{'FINISHED'}" and results["after_undo_reference"] == results["before_reference"]
    assert results["file_status"].startswith("Reference: desert dunes"), results["file_status"]
    assert "does not exist" in results["missing_status"] and "cell size" in results["no_cell_status"]
    assert results["after_bad_files"] == results["from_file"]  # a failed reference changes nothing
    assert "holds no Worldsculpt grid" in results["not_a_terrain"]


def test_explore_streams_tiles_around_the_camera(addon_zip, tiny_models, private_backend, tmp_path):
    """Near tiles first at lod 0, far ones at lod 1, exact shared edges, eviction, cancel when the view moves
    on, a killed backend leaves the tiles, and stored tiles come back identical from a new backend."""
    from backend.world.store import WorldStore

    proc = private_backend("--models-dir", str(tiny_models))

    def kill() -> str:
        proc.kill()
        return "killed"

    def restart() -> str:  # a new backend process on the same world folder
        return private_backend("--models-dir", str(tiny_models)).address

    r = _converse("explore.py", [str(addon_zip), proc.address, str(tmp_path)], tmp_path,
                  {"KILL": kill, "RESTART": restart}, 180)
    assert r["bad_folder_status"].startswith("Stopped: job_failed") and "a_file" in r["bad_folder_status"]
    assert r["operator_return_s"] < 0.5 and r["longest_tick_s"] < 0.5  # nothing waits for the backend
    assert r["progress_at_first_tile"] == ["[progress 0.11] Tiles 11%"]  # 1 of the 9 wanted, in the panel
    assert r["progress_settled"] == 1.0
    first = r["first_arrivals"]
    assert first[0] == [[0, 0], 0] and len(first) == 9  # the camera's tile first, at full detail
    assert all(lod == 1 and max(map(abs, c)) == 1 for c, lod in first[1:])  # then ring 1, coarse
    assert r["arrivals_after_move"][0] == [[1, 0], 0]  # flying east: the new centre is upgraded first
    shown = {tuple(c): lod for c, lod in r["tiles_after_move"]}
    assert set(shown) == {(x, y) for x in (0, 1, 2) for y in (-1, 0, 1)} and shown[(1, 0)] == 0
    assert len(r["tile_objects"]) == 9  # the west column was evicted; the bound is kept
    assert r["edge_pairs"] == 12 and r["edge_pairs_mismatched"] == 0
    assert r["lod_crack_max_m"] < 1e-3  # where levels meet, the fine edge follows the coarse one: no crack
    assert r["disconnect_noticed_s"] < 10 and r["longest_tick_after_kill_s"] < 0.25
    assert "Disconnected" in r["status_after_kill"]
    assert r["explore_status_after_kill"].startswith("Paused: backend disconnected")
    assert r["resumed_with"] == [[1, 1]]
    store = WorldStore.open(tmp_path / "scene.world")  # next to scene.blend
    assert set(store.tiles()) == {(0, 0), (1, 0)}  # lod 0 only; the cancelled (40, 0) never finished
    raw = np.load(tmp_path / "raw.npz")
    for tile in ("0,0", "1,0"):
        coords = tuple(int(v) for v in tile.split(","))
        np.testing.assert_array_equal(raw[f"after {tile}"], raw[f"before {tile}"])
        np.testing.assert_array_equal(raw[f"after {tile}"], store.get_tile(coords).field.heights)
    assert r["final_status"].startswith("Stopped")


def test_caves_stream_carve_fill_regenerate_in_blender(addon_zip, backend, tmp_path, blender):
    """The Caves panel's operators in real Blender against a live backend; the edits land in the world folder."""
    results = _scenario("caves.py", addon_zip, backend.address, tmp_path, timeout=300, python=blender[1])
    _check_version(results, blender)
    assert results["chunks"] >= 4 and results["faces_region"] > 0
    assert results["region"]["operator_return_s"] < 0.5 and results["region"]["longest_tick_s"] < 0.5
    assert results["surface_gap_m"] < 1.0  # 2 m voxels under a 16 m grid: the top surface is the terrain's
    # Blender's undo of the carve took it out of the world (its chunks were the plain ground before: not stored)
    # and the meshes back to the region's; the redo put both back
    assert results["undo"] == results["redo"] == "{'FINISHED'}"
    assert results["stored_after_carve"] and results["stored_after_undo"] == []
    assert results["faces_after_undo"] == results["faces_region"]
    assert results["status_after_undo"] == "Voxel edits: 1 undone, 0 redone"
    assert results["stored_after_redo"] == results["stored_after_carve"]
    assert results["faces_after_redo"] == results["faces_carved"]
    assert 0 < results["faces_blocky_lod"] < results["faces_blocky"]  # far chunks a level coarser
    assert 0 < results["faces_smooth_lod"] < results["faces_smooth"]
    assert results["status_after_redo"] == "Voxel edits: 0 undone, 1 redone"
    stored = sorted((tmp_path / "scene.world" / "voxels" / "2m").glob("*.safetensors"))
    assert stored, "the edits were not stored in the world folder"
    assert "at most 64" in results["too_big_status"]
    vox = (tmp_path / "export" / "scene_caves.vox").read_bytes()
    assert vox[:4] == b"VOX " and (tmp_path / "export" / "scene_caves.glb").stat().st_size > 0
    assert results["too_big_status"] in results["labels"]  # the panel shows why
    assert results["memory_region"]["status"].startswith("Done")  # generated chunks reading the world's memory
