"""Who gets in and where requests may reach: CURVE keys off loopback, paths confined to the backend's roots."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zmq.auth

from backend.server.auth import ensure_keys
from conftest import ROOT, TEST_ROOT, free_port
from protocol import ErrorCode, Message
from protocol.client import BackendError, Client, CurveKeys



def _outside_folder() -> Path:
    """A folder outside the tests' root (the temp folder): inside the checkout, unless the checkout itself lies
    in the temp folder (a CI clone may), then in the home folder."""
    for base in (ROOT / "tests", Path.home()):
        if not base.resolve().is_relative_to(TEST_ROOT.resolve()):
            return base / ".worldsculpt-outside-root"
    raise RuntimeError(f"neither the checkout nor the home folder lies outside {TEST_ROOT}")


OUTSIDE = _outside_folder()
HEIGHTS = {"heights": np.zeros((64, 64), np.float32)}


def test_the_outside_folder_lies_outside_the_tests_root():
    assert not OUTSIDE.resolve().is_relative_to(TEST_ROOT.resolve())


def test_keys_are_created_owner_only(tmp_path):
    folder = tmp_path / "keys"
    ensure_keys(folder)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for secret in ("server.key_secret", "client.key_secret"):
        assert stat.S_IMODE((folder / secret).stat().st_mode) == 0o600
    assert [p.name for p in (folder / "clients").iterdir()] == ["client.key"]
    before = (folder / "server.key_secret").read_bytes()
    ensure_keys(folder)  # a second start keeps the keys the add-on already holds
    assert (folder / "server.key_secret").read_bytes() == before


def test_non_loopback_bind_without_keys_is_refused():
    run = subprocess.run([sys.executable, "-m", "backend", "serve", "--address", f"tcp://127.0.0.2:{free_port()}"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode != 0 and "needs CURVE keys (--keys FOLDER)" in run.stderr


def test_only_clients_with_the_key_are_served(private_backend, tmp_path):
    folder = tmp_path / "keys"
    ensure_keys(folder)
    keys = CurveKeys.load(folder)
    proc = private_backend("--keys", str(folder), host="127.0.0.2", keys=keys)  # not 127.0.0.1: keys required
    stranger_folder = tmp_path / "stranger"
    ensure_keys(stranger_folder)  # a valid key pair the backend never admitted
    stranger = CurveKeys.load(stranger_folder)
    for name, client_keys in (("no keys", None), ("unknown key", CurveKeys(stranger.public, stranger.secret,
                                                                           keys.server))):
        client = Client(proc.address, keys=client_keys)
        try:
            with pytest.raises(BackendError) as info:
                client.request(Message("hello_request", {"client": name}), timeout=2)
            assert info.value.code == ErrorCode.TIMEOUT.value, name
        finally:
            client.close()
    client = Client(proc.address, keys=keys)
    try:
        assert client.request(Message("hello_request", {"client": "owner"}), timeout=10).kind == "hello_reply"
        assert client.request(Message("shutdown_request"), timeout=10).kind == "shutdown_reply"
        assert proc.process.wait(timeout=30) == 0
    finally:
        client.close()
    assert "CURVE clients only" in proc.output()


def _escapes(tmp_path: Path) -> dict[str, str]:
    """Paths outside the root: relative climbs, absolute, and through a symlinked folder inside the root."""
    OUTSIDE.mkdir(exist_ok=True)
    (OUTSIDE / "ref.npy").write_bytes(b"")
    link = tmp_path / "link"
    if not link.exists():
        link.symlink_to(OUTSIDE, target_is_directory=True)
    return {"climb": "../" * 30 + str(OUTSIDE).lstrip("/"), "absolute": str(OUTSIDE / "sub"),
            "symlink": str(link / "sub")}


def _submissions(path: str) -> dict[str, tuple[dict, dict]]:
    edit = {"cell_size": 10.0, "world": path}
    return {
        "export": ({"out_dir": path, "cell_size": 1.0}, HEIGHTS),
        "world_tiles create": ({"world": path, "tiles": [], "create": {"seed": 1, "style": "alpine"}}, {}),
        "world_tiles read": ({"world": path, "tiles": [[0, 0]]}, {}),
        "brush commit": ({**edit, "kind": "raise", "stroke": [[10, 10, 1.0]], "radius": 4}, HEIGHTS),
        "curve commit": ({**edit, "kind": "ridge", "curve": [[5, 5], [5, 40]], "width": 4.0}, HEIGHTS),
        "style_from": ({"path": path}, {}),
        "edit_log": ({"world": path, "undo": [0]}, {}),
        "voxels world": ({"cell_size": 10.0, "world": path, "chunk_min": [0, 0, 0], "chunk_count": [1, 1, 1]}, HEIGHTS),
        "voxels export": ({"cell_size": 10.0, "chunk_min": [0, 0, 0], "chunk_count": [1, 1, 1],
                           "export": {"out_dir": path}}, HEIGHTS),
        "voxel_edit": ({"cell_size": 10.0, "world": path, "edit": {"op": "carve", "points": [[0, 0, 0]], "radius": 2}},
                       HEIGHTS),
        "voxel_undo": ({"cell_size": 10.0, "world": path, "undo": [1]}, HEIGHTS),
    }


@pytest.mark.parametrize("escape", ["climb", "absolute", "symlink"])
def test_paths_outside_the_root_are_refused_for_every_job(client, tmp_path, escape):
    path = _escapes(tmp_path)[escape]
    for name, (params, arrays) in _submissions(path).items():
        with pytest.raises(BackendError) as info:
            client.submit(name.split()[0], params, arrays=arrays, timeout=10)
        assert info.value.code == ErrorCode.FORBIDDEN.value, (name, info.value)
        assert "lies outside the folders this backend may use" in info.value.message
    assert sorted(p.name for p in OUTSIDE.iterdir()) == ["ref.npy"]  # nothing created or written there


def test_refusals_do_not_tell_whether_a_file_outside_exists(client):
    OUTSIDE.mkdir(exist_ok=True)
    (OUTSIDE / "ref.npy").touch()
    messages = []
    for name in ("ref.npy", "no-such-file.npy"):  # the first exists, the second does not
        with pytest.raises(BackendError) as info:
            client.submit("style_from", {"path": str(OUTSIDE / name)}, timeout=10)
        messages.append(info.value.message.replace(name, "NAME"))
    assert messages[0] == messages[1]


def test_paths_inside_the_root_through_a_symlink_still_work(client, tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real", target_is_directory=True)
    job = client.submit("export", {"out_dir": str(tmp_path / "alias" / "out"), "cell_size": 2.0},
                        arrays={"heights": np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 4)})
    files = [Path(f) for f in client.wait_result(job, timeout=30).content["meta"]["files"]]
    assert files and all(f.is_relative_to(tmp_path / "real") and f.is_file() for f in files)


def test_relative_paths_resolve_against_the_first_root(client):
    name = f"ws-relative-{os.getpid()}"
    job = client.submit("export", {"out_dir": name, "cell_size": 2.0},
                        arrays={"heights": np.zeros((4, 4), np.float32)})
    files = [Path(f) for f in client.wait_result(job, timeout=30).content["meta"]["files"]]
    try:
        assert files[0].parent == TEST_ROOT.resolve() / name
    finally:
        for f in files:
            f.unlink()
        (TEST_ROOT / name).rmdir()


def test_curve_keys_load_like_the_backend_writes_them(tmp_path):
    ensure_keys(tmp_path)
    keys = CurveKeys.load(tmp_path)
    assert keys.server == zmq.auth.load_certificate(tmp_path / "server.key")[0] and len(keys.secret) == 40
