"""Checks every job kind's params start with: a map, holding only the keys the kind accepts."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any


def check_keys(job: str, params: Any, accepted: Collection[str]) -> dict[str, Any]:
    """``params`` as a map; ValueError naming the job and the keys it does not accept."""
    if not isinstance(params, dict):
        raise ValueError(f"{job} params must be a map, got {type(params).__name__}")
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ValueError(f"unknown {job} params {unknown}; accepted: {sorted(accepted)}")
    return params
