"""Backends run a study's trials: ``optuna`` (worker processes on this machine) or ``ray``
(see ``registry`` for the names, ``base`` for the interface)."""
from __future__ import annotations

from search.run.backends.base import Backend, ContextInputs, MissingExtra
from search.run.backends.registry import BACKENDS, get_backend
from search.run.backends.settings import ParallelSettings, RaySettings

__all__ = ["BACKENDS", "Backend", "ContextInputs", "MissingExtra", "ParallelSettings", "RaySettings",
           "get_backend"]
