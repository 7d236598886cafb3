"""The backend server: a ZeroMQ ROUTER loop (``server``), the job queue (``jobs``), the device worker (``worker``)."""

from .server import Server, ServerConfig

__all__ = ["Server", "ServerConfig"]
