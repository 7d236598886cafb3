"""Only what pyproject.toml cannot say: ship the checkout's models/ folder as the `worldsculpt_models` package,
so an installed backend finds its learned models (backend/models/shipped.py)."""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["backend*", "protocol*"]), "worldsculpt_models"],
      package_dir={"worldsculpt_models": "models"})
