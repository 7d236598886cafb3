"""The wire format: every kind round-trips, and every kind of malformed input is refused."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest
import zmq

from protocol import KINDS, PROTOCOL_VERSION, ErrorCode, Limits, Message, ProtocolError, decode, encode
from protocol.client import configure_socket

HEIGHTS = np.linspace(-50.0, 1200.0, 64 * 48, dtype=np.float32).reshape(64, 48)
META = {"cell_size": 15.6, "resolution": 64, "size_m": 1000.0, "generator": "procedural", "seed": 3,
        "min_m": -50.0, "max_m": 1200.0}
SAMPLES: dict[str, tuple[dict, dict]] = {
    "hello_request": ({"client": "tests"}, {}),
    "submit_request": ({"job": "generate", "target": "Terrain", "params": {"style": "alpine", "resolution": 64}}, {}),
    "cancel_request": ({"job_id": "abc"}, {}),
    "status_request": ({}, {}),
    "ping": ({"sent": 12.5}, {}),
    "shutdown_request": ({}, {}),
    "hello_reply": ({"protocol_version": 1, "backend_version": "0.1.0", "device": "cpu",
                     "generators": {"procedural": ["alpine"]}, "styles": ["alpine"]}, {}),
    "submit_reply": ({"job_id": "abc", "superseded": ["old"]}, {}),
    "cancel_reply": ({"job_id": "abc", "cancelled": True}, {}),
    "status_reply": ({"running": None, "queued": [], "device": "cpu"}, {}),
    "progress": ({"job_id": "abc", "step": 3, "total": 9, "stage": "generating"}, {}),
    "preview": ({"job_id": "abc", "step": 3, "meta": {"resolution": 64}}, {"heights": HEIGHTS}),
    "result": ({"job_id": "abc", "meta": META}, {"heights": HEIGHTS, "mask": HEIGHTS > 0}),
    "error": ({"code": "job_failed", "message": "boom", "job_id": "abc"}, {}),
    "pong": ({"jobs": ["abc"], "ping_sent": 12.5}, {}),
    "shutdown_reply": ({}, {}),
}


def test_samples_cover_every_kind():
    assert set(SAMPLES) == set(KINDS)


def _assert_same(a: Message, b: Message) -> None:
    assert (a.kind, a.content, a.id, a.parent) == (b.kind, b.content, b.id, b.parent)
    assert a.arrays.keys() == b.arrays.keys()
    for name in a.arrays:
        assert a.arrays[name].dtype == b.arrays[name].dtype
        np.testing.assert_array_equal(a.arrays[name], b.arrays[name])


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_round_trip_in_memory(kind):
    content, arrays = SAMPLES[kind]
    msg = Message(kind, content, arrays, parent="parent-id")
    _assert_same(decode(encode(msg)), msg)


def test_round_trip_over_tcp_every_kind():
    context = zmq.Context.instance()
    router, dealer = context.socket(zmq.ROUTER), context.socket(zmq.DEALER)
    for s in (router, dealer):
        configure_socket(s, Limits())
    port = router.bind_to_random_port("tcp://127.0.0.1")
    dealer.connect(f"tcp://127.0.0.1:{port}")
    try:
        for kind, (content, arrays) in SAMPLES.items():
            msg = Message(kind, content, arrays)
            dealer.send_multipart(encode(msg), copy=False)
            assert router.poll(5000), f"{kind} did not arrive"
            identity, *frames = router.recv_multipart(copy=False)
            _assert_same(decode(frames), msg)
            router.send_multipart([identity, *encode(msg)], copy=False)  # and back the other way
            assert dealer.poll(5000)
            _assert_same(decode(dealer.recv_multipart(copy=False)), msg)
    finally:
        router.close(0)
        dealer.close(0)


def header(**overrides) -> dict:
    base = {"v": PROTOCOL_VERSION, "id": "x", "kind": "ping", "parent": None, "content": {}, "arrays": []}
    base.update(overrides)
    return base


def pack(h: dict) -> bytes:
    return msgpack.packb(h, use_bin_type=True)


def array_header(dtype="float32", shape=(4, 4), count=1) -> dict:
    arrays = [{"name": f"a{i}", "dtype": dtype, "shape": list(shape)} for i in range(count)]
    return header(kind="result", content={"job_id": "j", "meta": {}}, arrays=arrays)


def nested(depth: int, kind: str = "cancel_request", key: str = "job_id") -> bytes:
    """A header whose ``content[key]`` is a list nested ``depth`` deep (packb itself refuses to go past 512)."""
    placeholder = pack(header(kind=kind, content={key: "@@@@"}))
    return placeholder.replace(pack("@@@@"), b"\x91" * depth + b"\xc0")


# Each case: frames that must be refused, and a fragment the error message must contain.
BAD_FRAMES = {
    "empty": ([], "empty"),
    "bad msgpack": ([b"\xc1\xc1\xc1"], "msgpack"),
    "truncated msgpack": ([pack(header())[:-3]], "msgpack"),
    "not a map": ([pack([1, 2, 3])], "map"),
    "unknown kind": ([pack(header(kind="rm_rf"))], "unknown message kind"),
    "missing fields": ([pack(header(kind="submit_request", content={"job": "generate"}))], "missing"),
    "content not a map": ([pack(header(content=[1]))], "content"),
    "dtype not allowed": ([pack(array_header(dtype="object")), b"\0" * 128], "not allowed"),
    "size mismatch": ([pack(array_header()), b"\0" * 60], "needs 64"),
    "arrays without frames": ([pack(array_header())], "frames followed"),
    "too many arrays": ([pack(array_header(count=40)), *[b"\0" * 64] * 40], "exceeds limit"),
    "huge claimed array": ([pack(array_header(shape=(1 << 20, 1 << 20))), b"\0" * 64], "exceeds limit"),
    "huge claimed string": ([b"\x81\xa1v\xdb\xff\xff\xff\xf0abc"], "msgpack"),
    "huge claimed map": ([b"\xdf\xff\xff\xff\xff"], "msgpack"),
    "bad shape": ([pack(array_header(shape=(-1, 4))), b""], "bad shape"),
    # F1-F4 of issue 20: each of these stopped the backend
    "no parent": ([pack({k: v for k, v in header().items() if k != "parent"})], "parent"),
    "shape product wraps 64 bits": ([pack(array_header(dtype="uint8", shape=(2**32, 2**32))), b""], "exceeds limit"),
    "shape product wraps with itemsize": ([pack(array_header(shape=(2**63, 2))), b""], "exceeds limit"),
    "booleans as dimensions": ([pack(array_header(shape=(True, True))), b"\0" * 4], "bad shape"),
    "nested 1000 deep": ([nested(1000)], "deeper than"),
    "nested in a submit target": ([nested(40, "submit_request", "target")], "deeper than"),
    "boolean as ping time": ([pack(header(content={"sent": True}))], "must be a"),
    "target not a string": ([pack(header(kind="submit_request", content={"job": "generate", "target": 3,
                                                                       "params": {}}))], "must be a str"),
    "job id too long": ([pack(header(kind="cancel_request", content={"job_id": "j" * 100}))], "at most"),
}


@pytest.mark.parametrize("case", sorted(BAD_FRAMES))
def test_decode_refuses(case):
    frames, fragment = BAD_FRAMES[case]
    with pytest.raises(ProtocolError, match=fragment) as info:
        decode(frames)
    assert info.value.code == ErrorCode.BAD_MESSAGE


def test_total_message_size_is_limited_not_just_each_frame():
    limits = Limits(max_frame_bytes=1000, max_message_bytes=2500)
    frames = [pack(array_header(dtype="uint8", shape=(1000,), count=3)), *[b"\0" * 1000] * 3]
    with pytest.raises(ProtocolError, match="message of 3.* bytes exceeds the limit 2500"):
        decode(frames, limits)
    decode([pack(array_header(dtype="uint8", shape=(1000,), count=2)), *[b"\0" * 1000] * 2], limits)


def test_wrong_version_is_its_own_code():
    with pytest.raises(ProtocolError) as info:
        decode([pack(header(v=PROTOCOL_VERSION + 1))])
    assert info.value.code == ErrorCode.VERSION_MISMATCH


def test_decoded_arrays_are_zero_copy_views():
    frames = encode(Message("result", {"job_id": "j", "meta": {}}, {"heights": HEIGHTS}))
    data = bytearray(frames[1])
    decoded = decode([frames[0], data])
    assert np.shares_memory(decoded.arrays["heights"], np.frombuffer(data, dtype=np.uint8))
