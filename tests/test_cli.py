"""The README's main job, end to end: `python -m backend generate` starts its own backend, generates,
and writes a mesh, a 16-bit heightmap with its sidecar, and a Blender render."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import trimesh
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def test_generate_writes_assets_in_metres(tmp_path: Path) -> None:
    out = tmp_path / "world"
    run = subprocess.run(
        [sys.executable, "-m", "backend", "generate", "--out", str(out), "--resolution", "64",
         "--size-m", "2000", "--height-m", "800", "--seed", "5", "--style", "volcanic"],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )
    assert run.returncode == 0, run.stdout + run.stderr

    sidecar = json.loads((out / "terrain.png.json").read_text())
    assert sidecar["world_size_m"] == [2000.0, 2000.0] and (sidecar["width"], sidecar["height"]) == (64, 64)
    png = np.asarray(Image.open(out / "terrain.png"))
    assert png.dtype == np.uint16 and png.shape == (64, 64) and png.min() < png.max()
    heights = sidecar["height_min_m"] + png * (sidecar["height_max_m"] - sidecar["height_min_m"]) / 65535

    mesh = trimesh.load(out / "terrain.glb", force="mesh")
    assert len(mesh.vertices) == 64 * 64
    # glTF is Y-up: the mesh spans the world size in x and z, and its heights are the PNG's.
    extent = mesh.bounds[1] - mesh.bounds[0]
    assert np.allclose(extent[[0, 2]], 2000.0, rtol=1e-4)
    assert np.isclose(mesh.vertices[:, 1].max(), heights.max(), atol=800 / 65535 + 1e-3)

    render = np.asarray(Image.open(out / "preview.png").convert("RGB"), dtype=np.float32)
    assert render.shape[2] == 3 and render.shape[0] >= 256
    assert render.std() > 10, "the render is blank"


def test_serve_has_no_fault_injection_switch_and_checks_its_roots(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "backend", "serve", "--fail-after-steps", "3"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "unrecognized arguments: --fail-after-steps 3" in run.stderr
    run = subprocess.run([sys.executable, "-m", "backend", "serve", "--root", str(tmp_path / "missing")],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and f"--root {tmp_path / 'missing'}: not a folder" in run.stderr
