#!/usr/bin/env bash
# Set up (first run only) and run the main job headless: start a local backend, generate a world
# with the default model, and write its assets (GLB mesh, 16-bit heightmap + sidecar, rendered PNG) to out/.
. "$(dirname "$0")/env.sh"
exec worldsculpt generate --out "${OUT_DIR:-out}" "$@"
