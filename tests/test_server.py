"""The live backend process: every request kind, jobs, cancellation, failures, liveness, shutdown."""

from __future__ import annotations

import signal
import time

import numpy as np
import pytest
import zmq

from backend.data.elevation_profiles import KINDS as CURVE_KINDS
from backend.editing import FALLOFFS, KINDS as BRUSH_KINDS
from backend.editing.brushes import SHAPE_SHARE
from backend.generators.base import QUALITIES
from backend.generators.voxel_region import CHUNK_SOURCES, MESH_STYLES
from backend.export import FORMATS
from backend.export.heightmaps import PRESETS
from backend.simulation.landscape import EROSION_STAGES
from backend.simulation.surrogate_stage import ENGINES
from backend.voxels.chunk import MATERIAL, VOXEL_SIZES_M
from protocol import ErrorCode, Limits, Message, decode, encode
from conftest import SERVE_WITH_FAILING
from protocol.client import BackendError, Client

SMALL = {"style": "alpine", "resolution": 64, "seed": 7, "size_m": 2000.0, "height_m": 800.0}
BIG = {"style": "alpine", "resolution": 2048, "seed": 1}  # ~10 s on one CPU core: long enough to interrupt


def messages_for(client: Client, job_id: str, until: str, timeout: float = 30.0) -> list[Message]:
    """Everything about ``job_id`` up to and including the first message of kind ``until``."""
    seen: list[Message] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for msg in client.poll(0.1):
            if msg.content.get("job_id") == job_id:
                seen.append(msg)
                if msg.kind == until:
                    return seen
    raise AssertionError(f"no {until} for job {job_id} in {timeout} s; got {[m.kind for m in seen]}")


def wait_until_running(client: Client, job_id: str) -> None:
    for msg in messages_for(client, job_id, "progress"):
        assert msg.kind != "error", msg.content


def raw_frames(address: str, frames: list, timeout: float = 5.0) -> Message:
    """Frames sent on a bare DEALER, and the first answer (whatever they hold, the backend must answer)."""
    socket = zmq.Context.instance().socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.connect(address)
    try:
        socket.send_multipart(frames, copy=False)
        assert socket.poll(int(timeout * 1000)), "no answer"
        return decode(socket.recv_multipart())
    finally:
        socket.close()


def raw_request(address: str, msg: Message, timeout: float = 5.0) -> Message:
    """One request on a bare DEALER (the Client consumes pongs itself, so tests read them here)."""
    return raw_frames(address, encode(msg), timeout)


def held_jobs(client: Client) -> list[str]:
    return raw_request(client.address, Message("ping", {"sent": time.monotonic()})).content["jobs"]


def test_hello_lists_generators_styles_and_the_menus_choices(backend):
    content = backend.hello.content
    assert content["protocol_version"] == 1
    assert content["device"] == "cpu"
    styles = {"alpine", "rolling_hills", "desert_dunes", "canyon_mesa", "archipelago", "volcanic", "glacial_valleys"}
    assert set(content["generators"]["procedural"]) == styles
    assert set(content["generators"]["diffusion"]) == styles  # the shipped learned models, the default
    # the add-on's menus are the backend's own lists, in their order, each choice labelled and explained
    menus = content["menus"]
    expected = {"quality": list(QUALITIES), "erosion_stage": list(EROSION_STAGES),
                "brush_falloff": list(FALLOFFS), "brush_kind": list(BRUSH_KINDS),
                "curve_kind": list(CURVE_KINDS), "export_format": list(FORMATS),
                "export_preset": ["none", *PRESETS], "simulate_engine": ["auto", *ENGINES],
                "voxel_size": [f"{size:g}" for size in VOXEL_SIZES_M], "voxel_mesh": list(MESH_STYLES),
                "voxel_source": list(CHUNK_SOURCES)}
    covers, fills = ([name for name, _, _ in menus[menu]["choices"]] for menu in ("ground_cover", "fill_material"))
    assert {menu: [name for name, _, _ in m["choices"]] for menu, m in menus.items()} == \
        {**expected, "ground_cover": covers, "fill_material": fills}
    assert covers and fills and all(MATERIAL.get(name, 0) > 0 for name in covers + fills)  # solid palette materials
    assert all(label and note for m in menus.values() for _, label, note in m["choices"])
    assert (menus["quality"]["default"], menus["erosion_stage"]["default"]) == ("interactive", "light")
    assert (menus["brush_falloff"]["default"], menus["brush_kind"]["default"]) == ("smooth", "raise")
    assert menus["curve_kind"]["default"] == "ridge" and menus["export_format"]["default"] == ["png16", "glb"]
    assert [menus[m]["default"] for m in ("voxel_size", "voxel_mesh", "voxel_source", "ground_cover", "fill_material")] \
        == ["2", "smooth", "learned", "grass", "rock"]
    # the share of its circle each displacing brush shapes: the add-on draws that ring inside the circle
    assert content["brush_shape_share"] == {kind: SHAPE_SHARE for kind in ("raise", "lower", "ridge", "valley")}


def test_generate_streams_progress_previews_and_result(client):
    job_id = client.submit("generate", SMALL, target="Terrain")
    seen = messages_for(client, job_id, "result")
    steps = [m.content["step"] for m in seen if m.kind == "progress" and m.content["total"]]
    assert steps == list(range(1, steps[-1] + 1))
    previews = [m for m in seen if m.kind == "preview"]
    sizes = [p.arrays["heights"].shape[0] for p in previews]
    assert sizes and sizes == sorted(sizes) and sizes[0] < sizes[-1]  # the coarse level, then the fine
    for p in previews:  # each spans the whole world, whatever its size
        n, meta = p.arrays["heights"].shape, p.content["meta"]
        assert n[0] == n[1] == meta["resolution"] and meta["cell_size"] * (n[0] - 1) == pytest.approx(2000.0)
    result = seen[-1]
    heights = result.arrays["heights"]
    meta = result.content["meta"]
    assert heights.dtype == np.float32 and heights.shape == (64, 64)
    assert meta == {"cell_size": pytest.approx(2000.0 / 63), "resolution": 64, "size_m": 2000.0,
                    "generator": "diffusion", "seed": 7, "min_m": float(heights.min()), "max_m": float(heights.max())}
    assert heights.max() - heights.min() == pytest.approx(800.0, rel=1e-4)
    # Same seed, same world: the generator is deterministic.
    again = messages_for(client, client.submit("generate", SMALL), "result")[-1]
    np.testing.assert_array_equal(again.arrays["heights"], heights)


@pytest.mark.parametrize("params, fragment", [
    ({**SMALL, "resolution": 8}, "resolution must be in [16, 4096], got 8"),
    ({**SMALL, "resolution": "big"}, "resolution must be an integer"),
    ({**SMALL, "style": "moon"}, "no style(s) ['moon']"),
    ({**SMALL, "generator": "dalle"}, "unknown generator 'dalle'"),
    ({**SMALL, "sliders": {"roughness": 2.0}}, "sliders['roughness'] must be in [0, 1]"),
    ({**SMALL, "resolutoin": 64}, "unknown parameter(s) ['resolutoin']"),
])
def test_bad_params_are_refused_clearly(client, params, fragment):
    with pytest.raises(BackendError) as info:
        client.submit("generate", params)
    assert info.value.code == ErrorCode.BAD_PARAMS.value
    assert fragment in info.value.message


def test_status_cancel_unknown_and_ping(client):
    status = client.request(Message("status_request"), timeout=5)
    assert status.content["device"] == "cpu" and status.content["queued"] == []
    with pytest.raises(BackendError) as info:
        client.request(Message("cancel_request", {"job_id": "nope"}), timeout=5)
    assert info.value.code == ErrorCode.UNKNOWN_JOB.value
    pong = raw_request(client.address, Message("ping", {"sent": 42.0}))
    assert pong.kind == "pong" and pong.content == {"jobs": [], "ping_sent": 42.0}


def test_malformed_frames_get_bad_message_and_server_keeps_serving(backend):
    from test_protocol import BAD_FRAMES, pack, header

    socket = zmq.Context.instance().socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.connect(backend.address)
    cases = {name: frames for name, (frames, _) in BAD_FRAMES.items() if frames}
    cases["server-to-client kind"] = [pack(header(kind="result", content={"job_id": "j", "meta": {}}))]
    cases["job_id not a string"] = [pack(header(kind="cancel_request", content={"job_id": [1]}))]
    cases["wrong version"] = [pack(header(v=99))]
    try:
        for name, frames in cases.items():
            socket.send_multipart(frames)
            assert socket.poll(5000), f"no answer to {name}"
            reply = decode(socket.recv_multipart())
            assert reply.kind == "error", name
            expected = ErrorCode.VERSION_MISMATCH if name == "wrong version" else ErrorCode.BAD_MESSAGE
            assert reply.content["code"] == expected.value, (name, reply.content)
        socket.send_multipart(encode(Message("hello_request", {"client": "after abuse"})))
        assert socket.poll(5000)
        assert decode(socket.recv_multipart()).kind == "hello_reply"
    finally:
        socket.close()


def test_cancel_running_job_and_pings_answered_meanwhile(client):
    job_id = client.submit("generate", BIG, target="Big")
    wait_until_running(client, job_id)
    started = time.monotonic()
    assert held_jobs(client) == [job_id]
    assert time.monotonic() - started < 1.0  # answered mid-job, not after it
    reply = client.request(Message("cancel_request", {"job_id": job_id}), timeout=5)
    assert reply.content["cancelled"] is True
    error = messages_for(client, job_id, "error", timeout=15)[-1]
    assert error.content["code"] == ErrorCode.CANCELLED.value
    assert held_jobs(client) == []


def test_newer_job_for_same_target_supersedes_queued_one(client):
    running = client.submit("generate", BIG, target="A")
    wait_until_running(client, running)
    older = client.submit("generate", SMALL, target="T")
    reply = client.request(Message("submit_request", {"job": "generate", "target": "T", "params": SMALL}), timeout=5)
    newer = reply.content["job_id"]
    assert reply.content["superseded"] == [older]
    error = messages_for(client, older, "error", timeout=5)[-1]
    assert error.content["code"] == ErrorCode.SUPERSEDED.value
    assert held_jobs(client) == [running, newer]
    client.request(Message("cancel_request", {"job_id": newer}), timeout=5)  # queued: dropped at once
    assert messages_for(client, newer, "error", timeout=5)[-1].content["code"] == ErrorCode.CANCELLED.value
    client.request(Message("cancel_request", {"job_id": running}), timeout=5)
    messages_for(client, running, "error", timeout=15)
    assert held_jobs(client) == []


def test_failing_job_reports_job_failed_and_server_goes_on(private_backend):
    proc = private_backend(command=SERVE_WITH_FAILING)  # registers a generator "failing" (tests/failing_backend.py)
    client = Client(proc.address)
    try:
        failing = client.submit("generate", {**SMALL, "generator": "failing"})
        error = messages_for(client, failing, "error")[-1]
        assert error.content["code"] == ErrorCode.JOB_FAILED.value
        assert "RuntimeError: injected failure after step 3" in error.content["message"]
        # A job with fewer steps than the failure point still completes on the same server.
        short = {"style": "desert_dunes", "resolution": 16, "sliders": {"erosion_strength": 0.0},
                 "generator": "failing"}  # two steps: under the failure point
        result = messages_for(client, client.submit("generate", short), "result")[-1]
        assert result.arrays["heights"].shape == (16, 16)
    finally:
        client.close()


def test_client_notices_dead_backend(private_backend):
    proc = private_backend()
    client = Client(proc.address, heartbeat_interval=0.2, heartbeat_timeout=1.0)
    try:
        client.request(Message("status_request"), timeout=5)
        proc.kill()
        deadline = time.monotonic() + 3.0
        while client.connection_error() is None and time.monotonic() < deadline:
            client.poll(0.1)
        error = client.connection_error()
        assert error is not None and error.content["code"] == ErrorCode.DISCONNECTED.value
    finally:
        client.close()


def test_result_dropped_by_size_limit_is_reported_not_awaited(backend):
    # 300 kB frames: 256x256 previews (262 kB) fit, the 640x640 result (1.6 MB) is dropped by ZeroMQ, which
    # also drops the connection for good (libzmq does not reconnect after it): pongs stop, DISCONNECTED follows.
    client = Client(backend.address, limits=Limits(max_frame_bytes=300_000, max_header_bytes=64 * 1024),
                    heartbeat_interval=0.2, heartbeat_timeout=2.0)
    try:
        job_id = client.submit("generate", {**SMALL, "resolution": 640, "sliders": {"erosion_strength": 0.0},
                                            "generator": "procedural"})  # the transport is under test: fast
        with pytest.raises(BackendError) as info:
            client.wait_result(job_id, timeout=60)
        assert info.value.code == ErrorCode.DISCONNECTED.value
    finally:
        client.close()


def test_sigterm_mid_job_exits_cleanly(private_backend):
    proc = private_backend()
    client = Client(proc.address)
    try:
        job_id = client.submit("generate", BIG)
        wait_until_running(client, job_id)
        proc.process.send_signal(signal.SIGTERM)
        assert proc.process.wait(timeout=20) == 0
        # The job's owner was told before the sockets closed.
        assert messages_for(client, job_id, "error", timeout=5)[-1].content["code"] == ErrorCode.SHUTTING_DOWN.value
    finally:
        client.close()


def test_shutdown_needs_an_authenticated_client(private_backend):
    proc = private_backend()  # loopback, no keys: any local process could send it
    client = Client(proc.address)
    try:
        with pytest.raises(BackendError) as info:
            client.request(Message("shutdown_request"), timeout=5)
        assert info.value.code == ErrorCode.FORBIDDEN.value
        assert client.request(Message("status_request"), timeout=5).kind == "status_reply"
    finally:
        client.close()  # an authenticated client's shutdown: tests/test_security.py
