"""The backend server: a ZeroMQ ROUTER loop (``server``), the job queue (``jobs``), the device worker (``worker``)."""

from .server import Server

__all__ = ["Server"]
