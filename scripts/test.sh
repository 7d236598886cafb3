#!/usr/bin/env bash
# Set up (first run only) and run the whole test suite: real backend processes, real sockets, real Blender
# (bpy 4.2 LTS on Python 3.11 in .venv, bpy 5.1 on Python 3.13 in .venv313).
. "$(dirname "$0")/env.sh"
. "$(dirname "$0")/env_newest_blender.sh"
exec python -m pytest -q "$@"
