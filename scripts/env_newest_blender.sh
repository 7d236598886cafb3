# Sourced by test.sh: make (once) .venv313, the Python 3.13 of the newest Blender (5.1+) with only its bpy,
# in which the add-on tests run the built zip a second time (zmq and msgpack come from the zip's wheels).
NEWEST_BPY="bpy==5.1.*"
find_python313() {  # on PATH, else pyenv's
  if python3.13 --version >/dev/null 2>&1; then command -v python3.13; return; fi
  if command -v pyenv >/dev/null; then
    PYENV_VERSION="$(pyenv versions --bare | grep '^3\.13' | tail -1)" pyenv which python3.13 2>/dev/null || true
  fi
}
PY313="${WORLDSCULPT_PYTHON313:-$(find_python313)}"
if [ -z "$PY313" ]; then
  echo "Python 3.13 is needed for the newest Blender's tests: install it or set WORLDSCULPT_PYTHON313" >&2
  exit 1
fi
if [ ! -x .venv313/bin/python ]; then
  "$PY313" -m venv .venv313
fi
STAMP313=.venv313/.installed-$(echo "$NEWEST_BPY" | sha256sum | cut -c1-16)
if [ ! -f "$STAMP313" ]; then
  .venv313/bin/python -m pip install -q --upgrade pip
  .venv313/bin/python -m pip install -q "$NEWEST_BPY"
  touch "$STAMP313"
fi
