"""build_addon.py: the zip has the layout Blender's extension installer expects."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import importlib.util

ROOT = Path(__file__).resolve().parents[1]


def _validator() -> Path:
    """Blender's own `extension validate` implementation, runnable without a Blender binary."""
    (base,) = importlib.util.find_spec("bpy").submodule_search_locations  # found, not imported
    (found,) = Path(base).glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py")
    return found


def test_zip_layout_manifest_and_wheels(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "build_addon.py"), "--platform", "current", "--out", str(tmp_path)],
                   check=True, cwd=ROOT, capture_output=True, timeout=300)
    import backend

    version = backend.__version__  # the one version source
    zip_path = tmp_path / f"worldsculpt-{version}.zip"
    with zipfile.ZipFile(zip_path) as zf:
        names = set(zf.namelist())
        manifest = tomllib.loads(zf.read("blender_manifest.toml").decode())
        protocol_client = zf.read("protocol/client.py")
    assert manifest["id"] == "worldsculpt" and manifest["version"] == version
    assert manifest["blender_version_min"] == "4.2.0" and manifest["blender_version_max"] == "5.2.0"
    assert manifest["license"] == ["SPDX:GPL-3.0-or-later"]
    assert set(manifest["permissions"]) == {"network", "files"}
    assert manifest["platforms"] == ["linux-x64"] if sys.platform == "linux" else manifest["platforms"]
    wheels = manifest["wheels"]
    assert {w.split("/")[-1].split("-")[0] for w in wheels} == {"pyzmq", "msgpack"}
    assert all(w.startswith("./wheels/") and w[2:] in names for w in wheels)
    for package in ("pyzmq", "msgpack"):  # Blender 4.2-5.0 embed CPython 3.11, 5.1 and newer 3.13
        tags = [w.split("-")[-3:-1] for w in wheels if w.split("/")[-1].startswith(package + "-")]
        assert ["cp311", "cp311"] in tags, (package, tags)
        assert ["cp313", "cp313"] in tags or any(py == "cp312" and abi == "abi3" for py, abi in tags), (package, tags)
    assert {"__init__.py", "grid.py", "link.py", "local_backend.py", "mesh.py", "operators.py", "panels.py",
            "preferences.py", "properties.py"} <= names
    assert {"protocol/__init__.py", "protocol/client.py", "protocol/codec.py", "protocol/messages.py"} <= names
    assert protocol_client == (ROOT / "protocol" / "client.py").read_bytes()  # a real copy, not a link
    assert not any("__pycache__" in n or n.startswith("tests/") for n in names)
    check = subprocess.run([sys.executable, str(_validator()), "validate", str(zip_path)],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr


def test_manifest_filling_refuses_a_manifest_without_the_wheels_line(monkeypatch, tmp_path):
    spec = importlib.util.spec_from_file_location("build_addon", ROOT / "build_addon.py")
    build_addon = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build_addon)
    text = build_addon.manifest_text(["a-1-cp311-cp311-win_amd64.whl"], ["windows-x64"], "1.2.3")
    assert tomllib.loads(text)["wheels"] == ["./wheels/a-1-cp311-cp311-win_amd64.whl"]
    assert tomllib.loads(text)["version"] == "1.2.3"
    (tmp_path / "blender_manifest.toml").write_text('id = "x"\n')
    monkeypatch.setattr(build_addon, "ADDON", tmp_path)
    try:
        build_addon.manifest_text([], [], "1.2.3")
    except ValueError:
        return
    raise AssertionError("manifest_text accepted a manifest with no `wheels = []` line")
