"""Encoding and validated decoding of messages.

Arrays travel as their own ZeroMQ frames (no per-element conversion, no copy on either side:
``encode`` hands zmq the array's buffer, ``decode`` wraps the received frame with
``np.frombuffer``). Everything received is untrusted: sizes, dtypes and the header schema are
checked against :class:`Limits` before anything is allocated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import msgpack
import numpy as np

from .messages import KINDS, MAX_ID_LEN, MAX_TARGET_LEN, PROTOCOL_VERSION, REQUEST_FIELDS, ErrorCode, Message

ALLOWED_DTYPES = frozenset({"float32", "float16", "float64", "uint8", "uint16", "int32", "uint32", "int64", "bool"})


@dataclass(frozen=True)
class Limits:
    """What a peer accepts. ``max_frame_bytes`` (plus the header's) also sets ZMQ's MAXMSGSIZE, which
    ZeroMQ applies per frame: the whole message's size is checked here."""

    max_frame_bytes: int = 512 * 1024 * 1024  # one array frame; also ZMQ_MAXMSGSIZE
    max_message_bytes: int = 512 * 1024 * 1024  # all frames of one message together
    max_header_bytes: int = 1024 * 1024
    max_arrays: int = 32
    max_array_ndim: int = 4
    max_str_len: int = 64 * 1024
    max_container_len: int = 4096
    max_depth: int = 16  # maps and lists nested in the header: error texts and checks never recurse deeply


class ProtocolError(ValueError):
    """A received message broke the protocol; ``code`` says how."""

    def __init__(self, message: str, code: ErrorCode = ErrorCode.BAD_MESSAGE):
        super().__init__(message)
        self.code = code


def encode(msg: Message) -> list[Any]:
    """Message -> frames: [msgpack header, array buffers...] (arrays are not copied if contiguous)."""
    if msg.kind not in KINDS:
        raise ValueError(f"unknown message kind {msg.kind!r}")
    descriptors = []
    buffers = []
    for name, array in msg.arrays.items():
        array = np.asarray(array)
        if not array.flags.c_contiguous:  # (ascontiguousarray would also make a 0-d array 1-d)
            array = np.ascontiguousarray(array)
        if array.dtype.name not in ALLOWED_DTYPES:
            raise ValueError(f"array {name!r} has dtype {array.dtype}, allowed: {sorted(ALLOWED_DTYPES)}")
        descriptors.append({"name": name, "dtype": array.dtype.name, "shape": list(array.shape)})
        buffers.append(memoryview(array).cast("B") if array.size else b"")
    header = {
        "v": PROTOCOL_VERSION,
        "id": msg.id,
        "kind": msg.kind,
        "parent": msg.parent,
        "content": msg.content,
        "arrays": descriptors,
    }
    return [msgpack.packb(header, use_bin_type=True), *buffers]


def _unpack_header(raw: bytes, limits: Limits) -> dict[str, Any]:
    if len(raw) > limits.max_header_bytes:
        raise ProtocolError(f"header of {len(raw)} bytes exceeds limit {limits.max_header_bytes}")
    try:
        header = msgpack.unpackb(
            raw,
            raw=False,
            strict_map_key=True,
            max_str_len=limits.max_str_len,
            max_bin_len=limits.max_str_len,
            max_array_len=limits.max_container_len,
            max_map_len=limits.max_container_len,
            max_ext_len=0,
        )
    except (ValueError, msgpack.exceptions.ExtraData, msgpack.exceptions.FormatError,
            msgpack.exceptions.StackError) as exc:
        raise ProtocolError(f"header is not valid msgpack: {exc}") from exc
    if not isinstance(header, dict):
        raise ProtocolError(f"header must be a map, got {type(header).__name__}")
    return header


def _check_depth(header: dict[str, Any], max_depth: int) -> None:
    """Refuse containers nested deeper than ``max_depth`` (walked without recursion)."""
    stack: list[tuple[Any, int]] = [(header, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > max_depth:
            raise ProtocolError(f"header nests maps or lists deeper than {max_depth} levels")
        children = value.values() if isinstance(value, dict) else value
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))


def _check_envelope(header: dict[str, Any]) -> None:
    version = header.get("v")
    if version != PROTOCOL_VERSION:
        raise ProtocolError(f"protocol version {version!r:.40}, expected {PROTOCOL_VERSION}",
                            ErrorCode.VERSION_MISMATCH)
    for key, kinds in (("id", str), ("kind", str), ("content", dict), ("arrays", list)):
        if not isinstance(header.get(key), kinds):
            raise ProtocolError(f"header field {key!r} missing or not a {kinds.__name__}")
    if "parent" not in header or not isinstance(header["parent"], (str, type(None))):
        raise ProtocolError("header field 'parent' missing or not a string or nil")
    if len(header["id"]) > MAX_ID_LEN or len(header["parent"] or "") > MAX_ID_LEN:
        raise ProtocolError(f"message ids are at most {MAX_ID_LEN} characters")
    kind = header["kind"]
    if kind not in KINDS:
        raise ProtocolError(f"unknown message kind {kind!r:.80}")
    content = header["content"]
    missing = [k for k in KINDS[kind] if k not in content]
    if missing:
        raise ProtocolError(f"{kind} is missing content fields {missing}")
    for key, types in REQUEST_FIELDS.get(kind, {}).items():
        if key in content and (isinstance(content[key], bool) or not isinstance(content[key], types)):
            names = " or ".join(t.__name__ for t in types)
            raise ProtocolError(f"{kind} field {key!r} must be a {names}, got {type(content[key]).__name__}")
    if kind == "cancel_request" and len(content["job_id"]) > MAX_ID_LEN:
        raise ProtocolError(f"job ids are at most {MAX_ID_LEN} characters")
    if kind == "submit_request" and len(content["target"]) > MAX_TARGET_LEN:
        raise ProtocolError(f"target names are at most {MAX_TARGET_LEN} characters")


def _array_from_frame(desc: Any, frame: Any, limits: Limits) -> tuple[str, np.ndarray]:
    if not isinstance(desc, dict):
        raise ProtocolError("array descriptor must be a map")
    name, dtype, shape = desc.get("name"), desc.get("dtype"), desc.get("shape")
    if not isinstance(name, str):
        raise ProtocolError("array descriptor needs a string 'name'")
    if not isinstance(dtype, str) or dtype not in ALLOWED_DTYPES:  # (a list is not even hashable)
        raise ProtocolError(f"array {name!r:.80}: dtype {dtype!r:.80} not allowed")
    if (not isinstance(shape, list) or len(shape) > limits.max_array_ndim
            or not all(type(n) is int and 0 <= n for n in shape)):  # type(): True is an int, but no size
        raise ProtocolError(f"array {name!r:.80}: bad shape {shape!r:.200}")
    expected = math.prod(shape) * np.dtype(dtype).itemsize  # Python ints: no 64-bit wrap-around
    buffer = frame.buffer if hasattr(frame, "buffer") else frame
    size = memoryview(buffer).nbytes
    if expected > limits.max_frame_bytes:
        raise ProtocolError(f"array {name!r} of {expected} bytes exceeds limit {limits.max_frame_bytes}")
    if size != expected:
        raise ProtocolError(f"array {name!r}: frame has {size} bytes, shape {shape} {dtype} needs {expected}")
    return name, np.frombuffer(buffer, dtype=dtype).reshape(shape)


def _nbytes(frame: Any) -> int:
    return memoryview(frame.buffer if hasattr(frame, "buffer") else frame).nbytes


def decode(frames: Sequence[Any], limits: Limits = Limits()) -> Message:
    """Frames (bytes or zmq.Frame) -> Message, raising ProtocolError for anything malformed.

    Arrays are read-only views on the received frames: copy before writing into them.
    """
    if not frames:
        raise ProtocolError("empty message")
    if len(frames) > limits.max_arrays + 1:
        raise ProtocolError(f"{len(frames) - 1} array frames: exceeds limit {limits.max_arrays}")
    total = sum(_nbytes(f) for f in frames)
    if total > limits.max_message_bytes:
        raise ProtocolError(f"message of {total} bytes exceeds the limit {limits.max_message_bytes}")
    first = frames[0]
    raw = first.bytes if hasattr(first, "bytes") else bytes(first)
    header = _unpack_header(raw, limits)
    _check_depth(header, limits.max_depth)
    _check_envelope(header)
    descriptors = header["arrays"]
    if len(descriptors) > limits.max_arrays:
        raise ProtocolError(f"{len(descriptors)} arrays exceeds limit {limits.max_arrays}")
    if len(descriptors) != len(frames) - 1:
        raise ProtocolError(f"header lists {len(descriptors)} arrays but {len(frames) - 1} frames followed")
    arrays = dict(_array_from_frame(d, f, limits) for d, f in zip(descriptors, frames[1:]))
    return Message(header["kind"], header["content"], arrays, id=header["id"], parent=header["parent"])
