"""The ``simulate`` job on a real backend (tiny learned models and a tiny erosion surrogate trained by the real
script), and the Simulate panel driving it in real Blender."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, BackendProcess
from protocol import Message
from protocol.client import BackendError, Client
from test_addon import _scenario, addon_zip  # noqa: F401  (the built add-on zip fixture)

TINY_SURROGATE = {
    "maps": {"train": {"corpus": 2, "generated": 0}, "heldout": {"corpus": 1, "generated": 0}},
    "generated_seed": {"train": 0, "heldout": 0}, "rollout_steps": 12, "starts": [0, 2],
    "horizons": [1, 2, 4, 8, 10],
    "unet": {"dims": 2, "in_channels": 64, "out_channels": 16, "model_channels": 8, "channel_mult": [1, 2],
             "num_res_blocks": 1, "attn_levels": [], "mid_attn": False, "groups": 8, "emb_channels": 16,
             "n_sliders": 1, "norm": "none"},
    "fold": 4, "crop": 64, "batch": 2, "lr": 0.002, "noise": 0.005, "gradient_loss": 1.0, "mean_loss": 4.0,
    "steps": 4, "max_minutes": 5, "save_every": 2,
    "seed": 0, "gate_maps": 2, "gate_tolerance": 0.001, "fallback_share": 0.3}


@pytest.fixture(scope="session")
def surrogate_models(tiny_models, tmp_path_factory) -> Path:
    """The tiny learned models plus a tiny erosion surrogate from the real training script on their corpus."""
    out = tmp_path_factory.mktemp("surrogate_models")
    models = out / "models"
    shutil.copytree(tiny_models, models)
    config = dict(TINY_SURROGATE, out=str(models / "erosion_surrogate.safetensors"), run_dir=str(out / "run"),
                  log=str(out / "log.csv"))
    (out / "surrogate.json").write_text(json.dumps(config))
    subprocess.run([sys.executable, "-m", "backend.training.train_erosion_surrogate", str(out / "surrogate.json"),
                    "--corpus", str(tiny_models.parent / "corpus")], cwd=ROOT, check=True, capture_output=True,
                   timeout=600, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert (out / "log.csv").read_text().count("\n") == 3  # header and two checkpoints
    return models


@pytest.fixture(scope="session")
def simulate_backend(surrogate_models):
    proc = BackendProcess("--models-dir", str(surrogate_models))
    yield proc
    proc.stop()


@pytest.fixture
def sim_client(simulate_backend):
    c = Client(simulate_backend.address)
    yield c
    c.close()


def terrain(size: int = 96, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:size, 0:size]
    return (3.0 * rows + cols + 60.0 * rng.random((size, size))).astype(np.float32)


def test_simulate_params_are_checked(sim_client):
    heights = terrain(32)
    cases = {"no cell size": ({"steps": 4}, {"heights": heights}),
             "steps 0": ({"cell_size": 30.0, "steps": 0}, {"heights": heights}),
             "bad engine": ({"cell_size": 30.0, "engine": "magic"}, {"heights": heights}),
             "unknown key": ({"cell_size": 30.0, "speed": 2}, {"heights": heights}),
             "no heights": ({"cell_size": 30.0}, {}),
             "mask shape": ({"cell_size": 30.0}, {"heights": heights, "mask": np.ones((4, 4), np.float32)}),
             "empty mask": ({"cell_size": 30.0}, {"heights": heights, "mask": np.zeros_like(heights)})}
    for name, (params, arrays) in cases.items():
        with pytest.raises(BackendError) as err:
            sim_client.submit("simulate", params, target="sim", arrays=arrays)
        assert err.value.code == "bad_params", name


def test_simulate_whole_and_selection_with_previews_and_masks(sim_client):
    heights = terrain()
    previews = []
    job = sim_client.submit("simulate", {"cell_size": 30.0, "steps": 10, "engine": "surrogate"}, target="sim",
                            arrays={"heights": heights})
    result = sim_client.wait_result(job, 120, lambda m: previews.append(m) if m.kind == "preview" else None)
    meta, out = result.content["meta"], result.arrays
    assert meta["engine"] == "surrogate" and meta["calls"] == [10] and meta["mask_names"] == ["flow", "deposition", "wear"]
    assert len(previews) == 1 and previews[0].arrays["heights"].shape == heights.shape
    assert out["heights"].shape == heights.shape and np.isfinite(out["heights"]).all()
    assert out["masks"].shape == (*heights.shape, 3) and 0 <= out["masks"].min() and out["masks"].max() <= 1
    assert np.abs(out["heights"] - heights).mean() > 1.0  # it eroded
    mask = np.zeros_like(heights)
    mask[20:60, 30:70] = 1.0
    job = sim_client.submit("simulate", {"cell_size": 30.0, "steps": 3, "engine": "physics"}, target="sim",
                            arrays={"heights": heights, "mask": mask})
    selected = sim_client.wait_result(job, 120)
    changed = selected.arrays["heights"] != heights
    assert selected.content["meta"]["engine"] == "physics" and selected.content["meta"]["calls"] == [1, 1, 1]
    assert changed[mask > 0].mean() > 0.5 and not changed[mask == 0].any()  # outside the selection: as it was


def test_simulate_cancels_between_calls(sim_client):
    job = sim_client.submit("simulate", {"cell_size": 30.0, "steps": 80, "engine": "physics"}, target="sim",
                            arrays={"heights": terrain(512)})
    deadline = time.monotonic() + 120
    while not any(m.kind == "preview" and m.content.get("job_id") == job for m in sim_client.poll(0.5)):
        assert time.monotonic() < deadline, "no preview in 120 s"
    assert sim_client.request(Message("cancel_request", {"job_id": job}), timeout=5).content["cancelled"]
    with pytest.raises(BackendError) as err:
        sim_client.wait_result(job, 60)
    assert err.value.code == "cancelled"


def test_simulate_panel_in_blender(addon_zip, simulate_backend, tmp_path):
    results = _scenario("simulate.py", addon_zip, simulate_backend.address, tmp_path, timeout=400)
    assert results["failures"] == []
    before = np.load(tmp_path / "before.npy")
    whole, undone = np.load(tmp_path / "whole.npy"), np.load(tmp_path / "undone.npy")
    assert np.abs(whole - before).mean() > 0.5 and np.array_equal(undone, before)
    assert set(results["attributes"]) >= {"ws_flow", "ws_deposition", "ws_wear"}
    assert 0.0 <= results["flow_range"][0] and results["flow_range"][1] == pytest.approx(1.0)
    selection = np.load(tmp_path / "selection.npy")
    selected = np.load(tmp_path / "selected.npy").astype(bool)
    assert not (selection != before)[~selected].any() and (selection != before)[selected].mean() > 0.5
    assert np.array_equal(np.load(tmp_path / "cancelled.npy"), before)  # Cancel put the terrain back
    assert results["previews_seen"] >= 1
