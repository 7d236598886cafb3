"""Property tests: no frames make the codec raise anything but ProtocolError, no params make a job kind's
check raise anything but ValueError, and a live backend answers every generated message. The long run with
figures is ``reports/make_reliability_report.py``."""

from __future__ import annotations

import math

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend.server.job_kinds import JOB_KINDS
from backend.server.paths import Roots
from protocol import KINDS, PROTOCOL_VERSION, Message, ProtocolError, decode, encode
from test_server import raw_frames, raw_request

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(allow_nan=True),
                    st.text(max_size=20), st.binary(max_size=20))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                      max_leaves=20)
dims = st.one_of(st.integers(0, 2**64 - 1), st.booleans(), st.integers(-4, 4), st.just(2**32))
descriptors = st.one_of(
    st.fixed_dictionaries({"name": st.one_of(st.text(max_size=8), values),
                           "dtype": st.one_of(st.sampled_from(["float32", "uint8", "bool", "object", "int64"]), values),
                           "shape": st.one_of(st.lists(dims, max_size=5), values)}), values)


@st.composite
def headers(draw) -> dict:
    """Envelopes near the valid ones: each field valid, missing or of a random value."""
    kind = draw(st.sampled_from([*KINDS, "nope"]))
    fields = {"v": PROTOCOL_VERSION, "id": "a", "kind": kind, "parent": None,
              "content": {k: draw(values) for k in KINDS.get(kind, ())}, "arrays": draw(st.lists(descriptors,
                                                                                                max_size=3))}
    for key in list(fields):
        choice = draw(st.sampled_from(["keep", "keep", "keep", "drop", "random"]))
        if choice == "drop":
            del fields[key]
        elif choice == "random":
            fields[key] = draw(values)
    return fields


@st.composite
def frame_lists(draw) -> list[bytes]:
    header = msgpack.packb(draw(headers()), use_bin_type=True)
    if draw(st.booleans()):
        header = header[: draw(st.integers(0, len(header)))]
    return [header, *draw(st.lists(st.binary(max_size=64), max_size=4))]


@SETTINGS
@given(st.one_of(frame_lists(), st.lists(st.binary(max_size=64), max_size=4)))
def test_decode_raises_only_protocol_errors(frames):
    try:
        msg = decode(frames)
    except ProtocolError:
        return
    for array, frame in zip(msg.arrays.values(), frames[1:]):
        assert array.nbytes == len(frame)  # what was accepted matches its frame exactly


@SETTINGS
@given(st.lists(descriptors, max_size=3), st.lists(st.binary(max_size=64), max_size=3))
def test_array_descriptors_raise_only_protocol_errors(arrays, frames):
    header = {"v": PROTOCOL_VERSION, "id": "a", "kind": "result", "parent": None,
              "content": {"job_id": "j", "meta": {}}, "arrays": arrays}
    try:
        decode([msgpack.packb(header, use_bin_type=True), *frames])
    except ProtocolError:
        pass


jsonish = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1),
                                 st.floats(allow_nan=False), st.text(max_size=10)),
                       lambda inner: st.one_of(st.lists(inner, max_size=3),
                                               st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                       max_leaves=12)


@SETTINGS
@given(st.dictionaries(st.text(max_size=6), jsonish, max_size=4),
       st.lists(st.integers(0, 5), min_size=0, max_size=3), st.sampled_from(["float32", "uint16", "bool"]))
def test_valid_messages_round_trip(extra, shape, dtype):
    msg = Message("result", {"job_id": "j", "meta": extra}, {"a": np.zeros(shape, dtype)}, parent="p")
    back = decode(encode(msg))
    assert back.content == msg.content and back.arrays["a"].shape == tuple(shape)


def _params(draw, kind: str) -> dict:
    keys = ["style", "seed", "resolution", "lod", "world", "tiles", "create", "out_dir", "formats", "cell_size",
            "path", "kind", "stroke", "curve", "radius", "width", "steps", "commit", "sliders", "bogus"]
    return draw(st.dictionaries(st.sampled_from(keys), values, max_size=6))


@pytest.mark.parametrize("kind", sorted(JOB_KINDS))
@SETTINGS
@given(data=st.data())
def test_job_checks_raise_only_value_errors(kind, data, tmp_path_factory):
    roots = Roots([tmp_path_factory.getbasetemp()])
    params = _params(data.draw, kind)
    arrays = data.draw(st.sampled_from([{}, {"heights": np.zeros((33, 33), np.float32)},
                                        {"heights": np.full((3, 3), np.nan, np.float32)},
                                        {"heights": np.zeros(4, np.uint8)}, {"mask": np.ones((33, 33), bool)}]))
    try:
        JOB_KINDS[kind].parse(params, arrays, roots)
    except ValueError:
        pass


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frames=st.one_of(frame_lists(), st.lists(st.binary(max_size=32), min_size=1, max_size=3)))
def test_live_backend_answers_every_message(backend, frames):
    reply = raw_frames(backend.address, frames, timeout=10)
    assert reply.kind in ("error", "pong", "status_reply", "hello_reply", "cancel_reply", "submit_reply")
    assert backend.process.poll() is None
    assert raw_request(backend.address, Message("ping", {"sent": math.pi})).kind == "pong"
