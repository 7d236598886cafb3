# Sourced by the other scripts: make (once) and enter the project's virtual environment (Python 3.11, the
# Python of the oldest supported Blender, 4.2 LTS, whose bpy the test extra pins).
# Installs torch first, so pip takes the CPU build where one is on disk.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [ ! -x .venv/bin/python ]; then
  python3.11 -m venv .venv
fi
. .venv/bin/activate
STAMP=.venv/.installed-$(cat pyproject.toml setup.py | sha256sum | cut -c1-16)
if [ ! -f "$STAMP" ]; then
  python -m pip install -q --upgrade pip
  python -m pip install -q "torch==2.13.0"  # the CPU wheel on disk; pyproject accepts >=2.4
  python -m pip install -q -e ".[test]"
  touch "$STAMP"
fi
