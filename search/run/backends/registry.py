"""Backends by name: the one registry that ``parallel.backend``, ``--backend`` and the run read.

The registry maps a name to ``module:Class`` and imports lazily, so reading the names never pulls
in Ray, and a missing optional dependency is reported only when its backend is chosen. Adding a
backend is its module (a ``Backend`` subclass) and a line here.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from search.run.backends.base import Backend

BACKENDS: dict[str, str] = {
    "optuna": "search.run.backends.local:LocalBackend",
    "ray": "search.run.backends.ray_backend:RayBackend",
}


def get_backend(name: str) -> "Backend":
    """An instance of the named backend; unknown names list the valid ones."""
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {sorted(BACKENDS)}, got '{name}'")
    module_name, class_name = BACKENDS[name].split(":")
    module = importlib.import_module(module_name)
    return getattr(module, class_name)()
