"""The wire protocol between the Blender add-on and the backend: one small, versioned layer.

Both sides import this package (the add-on zip carries a copy made by ``build_addon.py``). It
needs only numpy, pyzmq and msgpack, never torch or bpy. See ``docs/PROTOCOL.md``.
"""

from .codec import Limits, ProtocolError, decode, encode
from .messages import KINDS, PROTOCOL_VERSION, ErrorCode, Message, new_id

__all__ = [
    "KINDS",
    "PROTOCOL_VERSION",
    "ErrorCode",
    "Limits",
    "Message",
    "ProtocolError",
    "decode",
    "encode",
    "new_id",
]
