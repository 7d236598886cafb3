"""Issue 20's findings F1-F10, each against a live backend: every one of these once stopped or stalled it."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from conftest import BackendProcess
from protocol import ErrorCode, Message, encode
from protocol.client import BackendError, Client
from test_protocol import array_header, header, nested, pack
from test_server import BIG, SMALL, messages_for, raw_frames, raw_request, wait_until_running

FAST = {**SMALL, "generator": "procedural", "sliders": {"erosion_strength": 0.0}}


def assert_alive(backend: BackendProcess) -> None:
    assert backend.process.poll() is None, backend.output()[-3000:]
    assert raw_request(backend.address, Message("ping", {"sent": 1.0}), timeout=5).kind == "pong"


def refused(client: Client, job: str, params: dict, arrays: dict | None = None) -> BackendError:
    with pytest.raises(BackendError) as info:
        client.submit(job, params, arrays=arrays, timeout=10)
    return info.value


@pytest.mark.parametrize("frames, fragment", [
    ([pack({"v": 1, "id": "a", "kind": "ping", "content": {}, "arrays": []})], "parent"),  # F1
    ([pack(array_header(dtype="uint8", shape=(2**32, 2**32))), b""], "exceeds limit"),  # F2
    ([pack(array_header(dtype="float32", shape=(2**63, 2))), b""], "exceeds limit"),  # F2
    ([pack(array_header(shape=(True, True))), b"\0" * 4], "bad shape"),  # F3
    ([nested(1000, "submit_request", "target")], "deeper than"),  # F4
    ([nested(1000, "cancel_request", "job_id")], "deeper than"),  # F4
], ids=["F1 no parent", "F2 uint8 2^32 x 2^32", "F2 float32 2^63 x 2", "F3 bool dims", "F4 target", "F4 job_id"])
def test_malformed_envelopes_are_answered(backend, frames, fragment):
    reply = raw_frames(backend.address, frames)
    assert reply.kind == "error" and reply.content["code"] == ErrorCode.BAD_MESSAGE.value
    assert fragment in reply.content["message"]
    assert_alive(backend)


def test_f4_deep_seed_in_generate_params(backend):
    deep = pack(header(kind="submit_request", content={"job": "generate", "target": "", "params": {"seed": "@@@@"}}))
    reply = raw_frames(backend.address, [deep.replace(pack("@@@@"), b"\x91" * 1000 + b"\xc0")])
    assert reply.content["code"] == ErrorCode.BAD_MESSAGE.value and "deeper than" in reply.content["message"]
    assert_alive(backend)


def test_f5_path_longer_than_the_file_system_allows(client, backend, tmp_path):
    long = str(tmp_path / ("x" * 5000))
    for job, params in (("world_tiles", {"world": long, "tiles": []}), ("style_from", {"path": long})):
        error = refused(client, job, params)
        assert error.code == ErrorCode.BAD_PARAMS.value and "not a usable path" in error.message, error
    deep = str(tmp_path / "/".join(["d" * 200] * 30))  # short names, 6000 characters in all
    assert refused(client, "export", {"out_dir": deep, "cell_size": 1.0},
                   {"heights": np.zeros((4, 4), np.float32)}).code == ErrorCode.BAD_PARAMS.value
    assert_alive(backend)


def test_f6_brush_into_a_world_with_an_empty_world_json(client, backend, tmp_path):
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "world.json").write_text("{}")
    params = {"kind": "raise", "stroke": [[10, 10, 1.0]], "radius": 4, "cell_size": 10.0, "world": str(tmp_path / "w")}
    error = refused(client, "brush", params, {"heights": np.zeros((64, 64), np.float32)})
    assert error.code == ErrorCode.BAD_PARAMS.value and "cannot be opened" in error.message, error
    assert_alive(backend)


@pytest.mark.parametrize("lod", [10**9, 2**64 - 1, 9])
def test_f7_huge_lod_is_refused_at_once(client, backend, tmp_path, lod):
    started = time.monotonic()
    error = refused(client, "world_tiles", {"world": str(tmp_path / "new"), "tiles": [], "lod": lod,
                                            "create": {"seed": 1, "style": "alpine"}})
    assert error.code == ErrorCode.BAD_PARAMS.value and "lod must be an integer in [0, 8]" in error.message
    assert time.monotonic() - started < 2.0
    assert not (tmp_path / "new").exists()
    assert_alive(backend)


def test_f8_restarted_backend_does_not_fail_the_next_job(private_backend):
    first = private_backend()
    client = Client(first.address, heartbeat_interval=0.2, heartbeat_timeout=120)
    try:
        lost = client.submit("generate", BIG)
        wait_until_running(client, lost)
        first.kill()
        second = private_backend(port=int(first.address.rsplit(":", 1)[1]))
        job = client.submit("generate", FAST)
        others: list[Message] = []
        result = client.wait_result(job, timeout=60, on_message=others.append)
        assert result.arrays["heights"].shape == (64, 64)
        notices = [m for m in others if m.kind == "error" and m.content.get("job_id") == lost]
        assert [m.content["code"] for m in notices] == [ErrorCode.DISCONNECTED.value]  # told, once, for its own job
        assert_alive(second)
    finally:
        client.close()


def test_f9_message_size_is_limited_in_total(backend):
    frame = np.zeros(200 * 1024 * 1024, np.uint8)  # three frames of 200 MiB: each under the frame limit
    msg = Message("submit_request", {"job": "export", "target": "", "params": {}},
                  {f"a{i}": frame for i in range(3)})
    reply = raw_frames(backend.address, encode(msg), timeout=60)
    assert reply.content["code"] == ErrorCode.BAD_MESSAGE.value
    assert "exceeds the limit 536870912" in reply.content["message"]
    assert_alive(backend)


def test_f9_queue_is_bounded_with_a_clear_busy_error(private_backend):
    proc = private_backend()
    client = Client(proc.address)
    try:
        running = client.submit("generate", BIG)
        wait_until_running(client, running)
        queued = [client.submit("generate", FAST) for _ in range(32)]
        error = refused(client, "generate", FAST)
        assert error.code == ErrorCode.BUSY.value and "32 queued jobs" in error.message
        for job_id in [*queued, running]:
            client.request(Message("cancel_request", {"job_id": job_id}), timeout=5)
        messages_for(client, running, "error", timeout=15)
        assert client.submit("generate", FAST)  # room again
    finally:
        client.close()


def test_f10_temp_files_of_killed_writes_are_swept_when_a_world_is_opened(client, private_backend, tmp_path):
    world = tmp_path / "w"
    job = client.submit("world_tiles", {"world": str(world), "tiles": [], "create": {"seed": 3, "style": "alpine"}})
    client.wait_result(job, timeout=60)
    strays = [world / ".world.json.123.abc.tmp.json", world / "tiles" / ".x0_y0.safetensors.9.q.tmp.safetensors"]
    for stray in strays:
        stray.parent.mkdir(exist_ok=True)
        stray.write_bytes(b"half a write")
    fresh = Client(private_backend().address)  # a backend that has not opened this world yet
    try:
        meta = fresh.wait_result(fresh.submit("world_tiles", {"world": str(world), "tiles": []}), timeout=60)
        assert meta.content["meta"]["seed"] == 3
        assert not any(s.exists() for s in strays)
        assert json.loads((world / "world.json").read_text())["seed"] == 3
    finally:
        fresh.close()
