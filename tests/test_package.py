"""A real package: `pip install .` (not editable) into a fresh virtual environment, then the installed
`worldsculpt generate`, run away from the checkout, makes learned terrain from the models the wheel ships;
pointed at a folder without models it says it runs the procedural generator (never silently)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
TORCH = "torch==2.13.0"  # the CPU wheel on this machine's disk; the project accepts torch>=2.4


def _run(command: list, cwd: Path, env: dict | None = None, timeout: float = 300) -> str:
    run = subprocess.run([str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True,
                         timeout=timeout)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run.stdout + run.stderr


def test_installed_package_generates_learned_terrain(tmp_path):
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], tmp_path)
    python = venv / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", python, "install", "--quiet"]  # this pip, the new venv
    _run([*pip, TORCH], tmp_path)
    _run([*pip, ROOT], tmp_path)  # builds and installs the wheel: no source checkout on the path afterwards
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "WORLDSCULPT_MODELS_DIR")}
    env["OMP_NUM_THREADS"] = "1"
    command = [venv / "bin" / "worldsculpt", "generate", "--resolution", "64", "--size-m", "2000", "--no-render",
               "--style", "alpine", "--seed", "3"]
    said = _run([*command, "--out", elsewhere / "learned"], elsewhere, env)
    assert "generator: diffusion" in said, said[-2000:]
    located = _run([python, "-c", "import backend, worldsculpt_models; print(backend.__file__); "
                    "print(worldsculpt_models.__path__[0])"], elsewhere, env).split()
    assert all(str(venv) in path for path in located) and str(ROOT) not in " ".join(located)
    assert (Path(located[1]) / "terrain_base.safetensors").is_file()
    sidecar = json.loads((elsewhere / "learned" / "terrain.png.json").read_text())
    png = np.asarray(Image.open(elsewhere / "learned" / "terrain.png"))
    assert png.shape == (64, 64) and png.min() < png.max() and sidecar["world_size_m"] == [2000.0, 2000.0]

    empty = elsewhere / "no_models"
    empty.mkdir()
    said = _run([*command, "--out", elsewhere / "fallback"], elsewhere, dict(env, WORLDSCULPT_MODELS_DIR=str(empty)))
    assert "generator: procedural" in said and f"no learned models in {empty}" in said, said[-2000:]
