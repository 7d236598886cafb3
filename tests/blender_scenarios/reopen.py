"""Scenario: open a .blend saved by a connected session, in a new session with no backend: the panels show
this session's state ("Not connected", no device, no progress), not what the saved one last said.

    python reopen.py <zip> <blend file>
"""

from __future__ import annotations

import sys

import bpy

import _harness as h

zip_path, blend = sys.argv[1], sys.argv[2]
addon = h.install(zip_path)
bpy.ops.wm.open_mainfile(filepath=blend)
s = h.settings()
h.results.update(status=s.status, device=s.device, connected=s.connected, progress=s.progress,
                 labels=h.draw_panels(addon), objects=sorted(bpy.data.objects.keys()))
h.finish()
