"""Dominance and the Pareto front (non-dominated set) over any number of objectives.

The one dominance test of the project: early stopping, the front, pick and the benchmarks use it.
Directions are Optuna's words, ``maximize`` / ``minimize``: ``MAXIMIZE`` / ``MINIMIZE``, defined
with the metric registry (``trainers.costs.metrics``).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from trainers.costs.metrics import MAXIMIZE, MINIMIZE

# Optuna's system attr of a trial's ``constraints_func`` values (``search.constraints``): the
# trial is feasible when none is > 0. The front, its size and ``pick`` count feasible trials only.
CONSTRAINTS_KEY = "constraints"
FEASIBLE = "feasible"   # the trials.csv column saying so, in studies with constraints

__all__ = ["CONSTRAINTS_KEY", "FEASIBLE", "MAXIMIZE", "MINIMIZE", "dominated_by", "dominated_rows",
           "dominates", "feasible", "pareto_front", "to_minimization"]


def feasible(trial: object) -> bool:
    """Whether a trial (an Optuna ``FrozenTrial``) meets the study's ``search.constraints`` (a
    study without any: every trial)."""
    return all(c <= 0 for c in getattr(trial, "system_attrs", {}).get(CONSTRAINTS_KEY, ()))


def to_minimization(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """Flip maximised columns so that smaller is better everywhere."""
    values = np.asarray(values, dtype=float)
    signs = np.array([-1.0 if d == MAXIMIZE else 1.0 for d in directions])
    return values * signs


def dominated_by(points: np.ndarray, point: np.ndarray) -> np.ndarray:
    """For minimisation points: which rows of ``points`` dominate ``point`` (no worse in every
    objective and better in one; identical rows do not dominate each other)."""
    return np.all(points <= point, axis=1) & np.any(points < point, axis=1)


def dominated_rows(points: np.ndarray, point: np.ndarray) -> np.ndarray:
    """For minimisation points: which rows of ``points`` ``point`` dominates."""
    return np.all(point <= points, axis=1) & np.any(point < points, axis=1)


def dominates(a: Sequence[float], b: Sequence[float], directions: Sequence[str]) -> bool:
    """True when ``a`` is no worse than ``b`` in every objective and better in one."""
    a_min, b_min = to_minimization([a, b], directions)
    return bool(dominated_by(a_min[None, :], b_min)[0])


def pareto_front(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """Indices (ascending) of the rows that no other row dominates (duplicates of a front point
    are all kept, as Optuna does)."""
    points = to_minimization(values, directions)
    if points.size == 0:
        return np.zeros(0, dtype=int)
    keep = [i for i, point in enumerate(points) if not np.any(dominated_by(points, point))]
    return np.asarray(keep, dtype=int)
