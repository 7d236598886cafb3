#!/usr/bin/env bash
# Set up (first run only) and run the whole test suite: real backend processes, real sockets, real Blender (bpy).
. "$(dirname "$0")/env.sh"
exec python -m pytest -q "$@"
