"""Hypervolume: hand-computed boxes (so a change in Optuna's private module shows up here)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from search.decide.hypervolume import (COST_REFERENCE, hypervolume, hypervolume_history,
                                normalised_losses, study_hypervolume)


def test_two_points_in_2d_is_the_union_of_their_boxes():
    # boxes [1,3]x[2,3] (area 2) and [2,3]x[1,3] (area 2) overlap in [2,3]x[2,3] (area 1)
    assert hypervolume(np.array([[1.0, 2.0], [2.0, 1.0]]), [3.0, 3.0]) == pytest.approx(3.0)


def test_one_point_in_3d_is_a_box_and_dominated_points_add_nothing():
    ref = [1.0, 1.0, 1.0]
    assert hypervolume(np.array([[0.5, 0.5, 0.0]]), ref) == pytest.approx(0.25)
    both = np.array([[0.5, 0.5, 0.0], [0.6, 0.6, 0.1]])
    assert hypervolume(both, ref) == pytest.approx(0.25)


def test_points_not_beating_the_reference_are_ignored():
    assert hypervolume(np.array([[2.0, 0.0]]), [1.0, 1.0]) == 0.0
    assert hypervolume(np.zeros((0, 2)), [1.0, 1.0]) == 0.0
    assert hypervolume(np.array([[0.5, 0.5], [1.0, 0.0]]), [1.0, 1.0]) == pytest.approx(0.25)


def _frame(rows):
    return pd.DataFrame([{"trial": i, "state": s, "accuracy": a, "flops": f}
                         for i, (s, a, f) in enumerate(rows)])


def test_normalisation_uses_the_dense_reference_and_documented_reference_point():
    frame = _frame([("COMPLETE", 0.9, 100.0)])
    losses, ref = normalised_losses(frame, ["accuracy", "flops"], ["maximize", "minimize"],
                                    {"flops": 200.0})
    assert losses.tolist() == [[-0.9, 0.5]]
    assert ref.tolist() == [0.0, COST_REFERENCE]
    # box: accuracy 0..0.9 times cost 0.5..1.1
    assert study_hypervolume(frame, ["accuracy", "flops"], ["maximize", "minimize"],
                             {"flops": 200.0}) == pytest.approx(0.9 * 0.6)


def test_history_never_decreases_and_skips_unfinished_trials():
    frame = _frame([("COMPLETE", 0.5, 100.0), ("FAIL", None, None), ("COMPLETE", 0.9, 150.0),
                    ("COMPLETE", 0.4, 190.0), ("COMPLETE", 0.95, 60.0)])
    history = hypervolume_history(frame, ["accuracy", "flops"], ["maximize", "minimize"],
                                  {"flops": 200.0})
    assert history["trial"].tolist() == [0, 2, 3, 4]
    values = history["hypervolume"].to_numpy()
    assert np.all(np.diff(values) >= -1e-12)
    assert values[2] == pytest.approx(values[1])      # trial 3 is dominated
    assert values[-1] == pytest.approx(0.95 * (1.1 - 0.3))   # trial 4 dominates all


def test_a_maximised_metric_below_zero_gets_a_reference_below_its_lowest_value():
    frame = _frame([("COMPLETE", -2.0, 100.0), ("COMPLETE", -0.5, 150.0)])
    losses, ref = normalised_losses(frame, ["accuracy", "flops"], ["maximize", "minimize"],
                                    {"flops": 200.0})
    assert ref[0] == pytest.approx(2.0 + 0.1 * 1.5)       # -(lowest - 10% of the spread)
    assert study_hypervolume(frame, ["accuracy", "flops"], ["maximize", "minimize"],
                             {"flops": 200.0}) > 0.0
    ones = _frame([("COMPLETE", 0.5, 100.0)])              # accuracy-like values: reference 0
    assert normalised_losses(ones, ["accuracy", "flops"], ["maximize", "minimize"])[1][0] == 0.0
