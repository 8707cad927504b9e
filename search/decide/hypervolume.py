"""Hypervolume of a set of trials: one number that grows as the front improves.

Objectives live on very different scales (accuracy in [0, 1], FLOPs in millions), so they are put
on one footing first (``normalised_losses``):

- a maximised metric (accuracy) becomes the loss ``-value``; its reference is ``0`` (accuracy 0),
  or, for a metric that goes below 0 (a custom one such as a negative loss), its lowest value
  less 10% of the values' spread, so that such a study's volume is not 0;
- a minimised metric (FLOPs, energy, size) is divided by the dense reference's value (or, when the
  study has none, by the largest value among the trials) and its reference is ``1.1``: 10% worse
  than the dense model, so the dense point itself still adds volume.

The reference point is therefore ``(0, 1.1, 1.1, ...)`` in that normalised space. Points that do not
strictly beat it in every objective add nothing. With the default objectives a hypervolume of 1.1^2
would mean accuracy 1 at zero cost.

Optuna computes the volume (``optuna._hypervolume.compute_hypervolume``, WFG, exact). It is a private
module, so it is used only here, behind ``hypervolume``; the tests check it against hand-computed
boxes so a change in Optuna shows up as a failing test, not a wrong report.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from search.pareto import MAXIMIZE

COST_REFERENCE = 1.1      # minimised metrics: 10% worse than the dense reference
GAIN_REFERENCE = 0.0      # maximised metrics: a value of 0 (e.g. accuracy 0)


def hypervolume(losses: np.ndarray, reference: Sequence[float]) -> float:
    """Volume dominated by ``losses`` (rows = points, all objectives minimised) up to ``reference``.

    Points that do not strictly dominate the reference point are ignored; no point gives 0.
    """
    from optuna._hypervolume import compute_hypervolume

    points = np.asarray(losses, dtype=float).reshape(-1, len(reference))
    ref = np.asarray(reference, dtype=float)
    points = points[np.all(np.isfinite(points), axis=1) & np.all(points < ref, axis=1)]
    if len(points) == 0:
        return 0.0
    return float(compute_hypervolume(points, ref))


def normalised_losses(frame: pd.DataFrame, metrics: Sequence[str], directions: Sequence[str],
                      dense: Mapping[str, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(losses, reference point) of the rows of ``frame`` on the scale described in the module doc."""
    dense = dense or {}
    columns, reference = [], []
    for metric, direction in zip(metrics, directions):
        values = frame[metric].to_numpy(dtype=float)
        if direction == MAXIMIZE:
            columns.append(-values)
            reference.append(-gain_reference(values))
            continue
        scale = float(dense.get(metric, 0.0) or 0.0)
        if not scale > 0:
            finite = values[np.isfinite(values)]
            scale = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
        columns.append(values / scale)
        reference.append(COST_REFERENCE)
    losses = np.stack(columns, axis=1) if columns else np.zeros((len(frame), 0))
    return losses, np.asarray(reference, dtype=float)


def gain_reference(values: np.ndarray) -> float:
    """Reference of a maximised metric: 0, or below the lowest value when some are negative."""
    finite = values[np.isfinite(values)]
    if not finite.size or finite.min() >= GAIN_REFERENCE:
        return GAIN_REFERENCE
    low = float(finite.min())
    spread = float(finite.max()) - low
    return low - 0.1 * (spread or abs(low))


def completed(frame: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """Completed trials with every objective recorded, in trial order."""
    if frame.empty or "state" not in frame:
        return frame.iloc[0:0]
    done = frame[frame["state"] == "COMPLETE"]
    missing = [m for m in metrics if m not in done]
    if missing:
        return done.iloc[0:0]
    return done.dropna(subset=list(metrics)).sort_values("trial")


def study_hypervolume(frame: pd.DataFrame, metrics: Sequence[str], directions: Sequence[str],
                      dense: Mapping[str, float] | None = None) -> float:
    """Hypervolume of all completed trials of a ``trials_frame``."""
    done = completed(frame, metrics)
    if done.empty:
        return 0.0
    losses, reference = normalised_losses(done, metrics, directions, dense)
    return hypervolume(losses, reference)


def hypervolume_history(frame: pd.DataFrame, metrics: Sequence[str], directions: Sequence[str],
                        dense: Mapping[str, float] | None = None) -> pd.DataFrame:
    """Hypervolume after each completed trial (columns ``trial``, ``hypervolume``)."""
    done = completed(frame, metrics)
    if done.empty:
        return pd.DataFrame({"trial": [], "hypervolume": []})
    losses, reference = normalised_losses(done, metrics, directions, dense)
    values = [hypervolume(losses[: i + 1], reference) for i in range(len(done))]
    return pd.DataFrame({"trial": done["trial"].astype(int).to_numpy(), "hypervolume": values})
