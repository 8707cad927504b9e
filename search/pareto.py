"""Pareto front (non-dominated set) over any number of objectives."""
from __future__ import annotations

from typing import Sequence

import numpy as np


def to_minimization(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """Flip maximised columns so that smaller is better everywhere."""
    values = np.asarray(values, dtype=float)
    signs = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    return values * signs


def pareto_front(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """Indices (ascending) of the rows that no other row dominates.

    Row ``a`` dominates ``b`` when it is no worse in every objective and better in one. Identical
    rows do not dominate each other, so duplicates of a front point are all kept (as Optuna does).
    """
    points = to_minimization(values, directions)
    if points.size == 0:
        return np.zeros(0, dtype=int)
    keep = []
    for i, point in enumerate(points):
        no_worse = np.all(points <= point, axis=1)
        better = np.any(points < point, axis=1)
        if not np.any(no_worse & better):
            keep.append(i)
    return np.asarray(keep, dtype=int)
