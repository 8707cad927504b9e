"""How sure a validation accuracy is: binomial (Wilson score) intervals, and front points whose
accuracy edge over a cheaper point is within that noise.

Validation accuracy is a fraction of n predictions (the study's ``val_samples``: images, or the
positions of text windows). On a split of a few hundred images one image moves it by a third of
a point, so two front points a point apart may be the same model as far as the split can tell.
Positions of one text window are not independent: there the interval is narrower than the truth.
No torch: the front table and ``pick`` read this module.
"""
from __future__ import annotations

from statistics import NormalDist
from typing import Sequence

import numpy as np
import pandas as pd

from search.pareto import MINIMIZE

CONFIDENCE = 0.95
INTERVAL_COLUMN = "acc 95% CI"
NOISE_COLUMN = "noise"
# Selection metrics (``trainers.selection_metrics``) that are a fraction of the validation
# predictions; f1_macro and custom metrics are not, and get no interval.
PROPORTION_METRICS = ("accuracy", "top5")


def wilson_interval(accuracy: float | Sequence[float] | np.ndarray | pd.Series, n: int,
                    confidence: float = CONFIDENCE) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of a proportion ``accuracy`` of ``n`` trials (two-sided,
    ``confidence``). Unlike the normal approximation it stays inside [0, 1] and is not empty at
    0 or 1 (the same as ``scipy.stats.binomtest(k, n).proportion_ci(method="wilson")``)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = np.asarray(accuracy, dtype=float)
    shrink = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / shrink
    half = z * np.sqrt(p * (1.0 - p) / n + z * z / (4 * n * n)) / shrink
    return np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)


def interval_samples(val_samples: object, metric: str) -> int | None:
    """The n of the intervals: the recorded number of validation predictions when the study's
    metric is a fraction of them; ``None`` (no interval) otherwise or when not recorded."""
    if metric not in PROPORTION_METRICS or not isinstance(val_samples, int) or val_samples < 1:
        return None
    return val_samples


def interval_texts(accuracy: pd.Series, n: int) -> pd.Series:
    """Each accuracy's interval as ``low-high`` (three decimals), e.g. ``0.962-0.981``."""
    low, high = wilson_interval(accuracy.astype(float), n)
    return pd.Series([f"{a:.3f}-{b:.3f}" for a, b in zip(low, high)], index=accuracy.index)


def first_cost(metrics: Sequence[str], directions: Sequence[str]) -> str | None:
    """The first minimised objective: the cost in which "cheaper" is read."""
    return next((m for m, d in zip(metrics, directions) if d == MINIMIZE), None)


def noise_notes(front: pd.DataFrame, cost: str, n: int) -> pd.Series:
    """``within noise of #N`` for each front point whose accuracy is no more than the noise above
    a cheaper front point's, N being that trial; ``""`` for the others.

    The point compared with is the most accurate of the front points that are cheaper in ``cost``
    and no more accurate: with two objectives, the next cheaper point. "Within the noise" means
    the two intervals overlap (a conservative test: a difference can be real with overlapping
    95% intervals, never the other way round).
    """
    notes = pd.Series("", index=front.index, dtype=object)
    if front.empty or cost not in front:
        return notes
    accuracy = front["accuracy"].astype(float)
    low, high = (pd.Series(v, index=front.index) for v in wilson_interval(accuracy, n))
    costs = front[cost].astype(float)
    for index in front.index:
        cheaper = front.index[(costs < costs[index]) & (accuracy <= accuracy[index])]
        if len(cheaper) == 0:
            continue
        best = max(cheaper, key=lambda i: (accuracy[i], -costs[i]))
        if low[index] <= high[best]:
            notes[index] = f"within noise of #{int(front.loc[best, 'trial'])}"
    return notes
