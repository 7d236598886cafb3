"""Worldsculpt backend: the process that owns the models and the device.

Blender never imports this package; it talks to it over ZeroMQ (see `protocol`).
"""

__version__ = "0.1.0"
