"""Backends run a study's trials: ``optuna`` (worker processes on this machine) or ``ray``.

The registry maps a name to ``module:Class`` and imports lazily, so ``import search`` never pulls in
Ray, and a missing optional dependency is reported only when its backend is chosen.
"""
from __future__ import annotations

import importlib

from search.run.backends.base import Backend, ContextInputs, MissingExtra
from search.run.backends.settings import ParallelSettings, RaySettings

BACKENDS: dict[str, str] = {
    "optuna": "search.run.backends.local:LocalBackend",
    "ray": "search.run.backends.ray_backend:RayBackend",
}


def get_backend(name: str) -> Backend:
    """An instance of the named backend; unknown names list the valid ones."""
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {sorted(BACKENDS)}, got '{name}'")
    module_name, class_name = BACKENDS[name].split(":")
    module = importlib.import_module(module_name)
    return getattr(module, class_name)()


__all__ = ["BACKENDS", "Backend", "ContextInputs", "MissingExtra", "ParallelSettings", "RaySettings",
           "get_backend"]
