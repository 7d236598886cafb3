"""Where the learned models' files are: the one place that decides it.

In order: the folder named by the ``WORLDSCULPT_MODELS_DIR`` environment variable (``serve --models-dir``
overrides it for one server); else the models installed with the package (``worldsculpt_models``, the
wheel's copy of ``models/``); else ``models/`` of the source checkout this module runs from.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

ENV_VAR = "WORLDSCULPT_MODELS_DIR"
PACKAGE = "worldsculpt_models"  # setup.py maps it onto the checkout's models/ folder


def models_dir() -> Path:
    """The folder the backend loads its learned models from (it may lack them: callers check and say so)."""
    chosen = os.environ.get(ENV_VAR)
    if chosen:
        return Path(chosen).expanduser().resolve()
    spec = importlib.util.find_spec(PACKAGE)
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(__file__).resolve().parents[1] / "models"


def describe_source() -> str:
    """Where models_dir() came from, for logs and error messages."""
    if os.environ.get(ENV_VAR):
        return f"{ENV_VAR}={os.environ[ENV_VAR]}"
    return "the installed package" if importlib.util.find_spec(PACKAGE) else "the source checkout"
