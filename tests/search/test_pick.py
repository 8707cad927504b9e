"""pick: constraints, preference rule, knee, nearest trials; the CLI on the finished study."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from search.decide.pick import PickSettings, format_pick, knee_index, pick_trial
from search.schema import ConfigError

METRICS = ["accuracy", "flops", "energy_uj"]
DIRECTIONS = ["maximize", "minimize", "minimize"]


def _frame():
    rows = [  # trial, accuracy, flops, energy_uj, size_bytes
        (0, 0.98, 1.0e6, 3.0, 40_000),
        (1, 0.97, 5.0e5, 1.5, 12_000),
        (2, 0.95, 2.0e5, 0.6, 6_000),
        (3, 0.80, 5.0e4, 0.2, 2_000),
        (4, 0.94, 6.0e5, 2.0, 20_000),   # dominated by trial 1
    ]
    frame = pd.DataFrame(rows, columns=["trial", "accuracy", "flops", "energy_uj", "size_bytes"])
    frame["state"] = "COMPLETE"
    failed = pd.DataFrame([{"trial": 5, "state": "FAIL"}])
    return pd.concat([frame, failed], ignore_index=True)


def test_cost_constraint_then_highest_accuracy():
    result = pick_trial(_frame(), PickSettings(max_flops=5.5e5), METRICS, DIRECTIONS)
    assert result.trial == 1
    assert result.feasible == 3 and result.candidates == 5
    assert "highest accuracy" in result.reason and "flops 5e+05 <= 5.5e+05" in result.reason


def test_a_bound_on_a_metric_the_study_never_recorded_says_so():
    """Latency not measured (``cost.measure_latency: false``): the pick said "the study has no
    completed trials yet"."""
    result = pick_trial(_frame(), PickSettings(min_accuracy=0.9, max_latency_ms=1.0), METRICS,
                        DIRECTIONS)
    assert result.trial is None
    assert "no completed trial of this study records latency_ms" in result.reason
    empty = _frame().assign(state="FAIL")
    assert "no completed trials yet" in pick_trial(empty, PickSettings(knee=True), METRICS,
                                                   DIRECTIONS).reason


def test_accuracy_floor_alone_prefers_the_cheapest_model():
    result = pick_trial(_frame(), PickSettings(min_accuracy=0.95), METRICS, DIRECTIONS)
    assert result.trial == 2
    assert "lowest flops" in result.reason


def test_size_limit_in_kilobytes_and_explicit_preference():
    result = pick_trial(_frame(), PickSettings(max_size_kb=13, prefer="energy_uj"), METRICS,
                        DIRECTIONS)
    assert result.trial == 3
    assert "size_kb 1.9531 <= 13" in result.reason


def test_nothing_fits_names_the_constraints_and_the_nearest_trials():
    settings = PickSettings(min_accuracy=0.99, max_energy_uj=0.5)
    result = pick_trial(_frame(), settings, METRICS, DIRECTIONS)
    assert not result and result.trial is None
    assert "--min-accuracy 0.99 --max-energy-uj 0.5" in result.reason
    # relative misses: trial 3 only accuracy (0.19/0.99); trial 2 accuracy 0.04 + energy 0.2
    assert result.nearest["trial"].tolist()[:2] == [3, 2]
    text = format_pick(result)
    assert "nearest trials" in text and "energy_uj 0.6000 <= 0.5000" in text


def test_knee_weighs_quality_and_cost_equally():
    values = np.array([[1.0, 10.0, 10.0], [0.9, 2.0, 2.0], [0.5, 1.0, 1.0]])
    assert knee_index(values, DIRECTIONS) == 1
    result = pick_trial(_frame(), PickSettings(knee=True), METRICS, DIRECTIONS)
    assert result.trial == 2 and "knee" in result.reason


@pytest.mark.parametrize("kwargs, message", [
    ({"max_flops": -1.0}, "max_flops must be > 0, got -1.0"),
    ({"min_accuracy": 1.5}, "min_accuracy must be in [0, 1], got 1.5"),
    ({"knee": True, "prefer": "flops"}, "choose either knee or prefer"),
])
def test_bad_settings_are_rejected_with_the_rule(kwargs, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        PickSettings(**kwargs).check_metric("accuracy")


def test_an_accuracy_bound_outside_0_1_is_refused_only_for_fraction_metrics():
    PickSettings(min_accuracy=-0.5).check_metric("neg_loss")      # a custom metric: any number
    for metric in ("accuracy", "top5", "f1_macro"):
        with pytest.raises(ConfigError, match=r"min_accuracy must be in \[0, 1\], got -0.5"):
            PickSettings(min_accuracy=-0.5).check_metric(metric)
    with pytest.raises(ConfigError, match="min_accuracy must be a finite number, got nan"):
        PickSettings(min_accuracy=float("nan"))


@pytest.mark.parametrize("prefer", ["speed", "test_accuracy", "seed", "trial"])
def test_a_preference_must_be_a_metric_a_study_may_optimise(prefer):
    # the test split is for reporting: selection never reads it; trial numbers are no metric
    with pytest.raises(ConfigError, match=f"prefer must be an objective or a metric a study may "
                                          f"optimise.*test split.*got '{prefer}'"):
        frame = _frame().assign(test_accuracy=0.9, seed=1)
        pick_trial(frame, PickSettings(prefer=prefer), METRICS, DIRECTIONS)


def test_pick_api_and_cli_on_the_finished_study(finished_study, study_cli):
    front = finished_study.front()
    best = front.sort_values(["accuracy", "flops"], ascending=[False, True]).iloc[0]
    assert finished_study.pick().trial == int(best["trial"])
    limit = float(front["flops"].min()) * 1.01
    found = finished_study.pick(max_flops=limit)
    assert found and found.row["flops"] <= limit

    code, out, _ = study_cli("pick", "--max-flops", f"{limit:g}")
    assert code == 0
    assert f"picked trial {found.trial}:" in out
    code, out, _ = study_cli("pick", "--max-flops", "1", "--min-accuracy", "0.5")
    assert code == 1
    assert "no completed trial meets --max-flops 1 --min-accuracy 0.5" in out
    assert "nearest trials" in out
    code, _, err = study_cli("pick", "--min-accuracy", "2")
    assert code == 2 and "min_accuracy must be in [0, 1], got 2.0" in err


def test_search_constraints_bound_the_front_and_the_pick(tmp_path, capsys):
    """``search.constraints`` steer the sampler; the front printed and in pareto.csv, and pick,
    counted the trials outside them too (the dense model at 32 bits was on the front and was
    picked, while the progress lines said the front was empty)."""
    from conftest import tiny_config_dict

    from search.api import run_search
    from search.config import config_from_dict

    raw = tiny_config_dict(tmp_path, n_trials=3, constraints={"max_flops": 50_000})
    result = run_search(config_from_dict(raw), log=lambda _: None)
    trials = pd.read_csv(result.folder / "trials.csv")
    dense = trials[trials["origin"] == "dense"].iloc[0]
    assert dense["flops"] > 50_000 and not dense["feasible"]
    front = pd.read_csv(result.folder / "pareto.csv")
    assert (front["flops"] <= 50_000).all() and front["feasible"].all()
    picked = result.pick(PickSettings())
    inside = int(((trials["state"] == "COMPLETE") & trials["feasible"]).sum())
    if inside:
        assert picked.trial is not None and picked.row["flops"] <= 50_000
    assert "outside the study's search.constraints left out" in picked.reason
    feasible = trials[(trials["state"] == "COMPLETE") & trials["feasible"]]["accuracy"]
    best = result.status().best_accuracy          # the dense model is the most accurate one
    assert (best is None and feasible.empty) or best == feasible.max()


def test_a_reused_duplicate_is_one_candidate_as_on_the_front():
    """pick counted a trial that reused an earlier one's result (``duplicate_of``) as another
    point: "5 non-dominated trials" where the front had 2, the nearest trials listed twins."""
    frame = _frame()
    twin = frame.iloc[[1]].assign(trial=6, duplicate_of=1.0)
    frame = pd.concat([frame, twin], ignore_index=True)
    result = pick_trial(frame, PickSettings(max_flops=5.5e5), METRICS, DIRECTIONS)
    assert result.trial == 1 and result.candidates == 5 and result.feasible == 3
    nothing = pick_trial(frame, PickSettings(max_flops=1e4), METRICS, DIRECTIONS)
    assert 6 not in list(nothing.nearest["trial"])


def test_reevaluated_alone_asks_for_a_pick():
    """``report --reevaluated`` alone picked on the search's own accuracy, silently, even with
    no re-evaluation stored (``pick --reevaluated`` refused); ``export N --reevaluated`` took N."""
    assert PickSettings(reevaluated=True).any and not PickSettings().any


def test_the_knee_of_a_single_direction_study_does_not_speak_of_cost():
    frame = pd.DataFrame({"trial": [0, 1], "accuracy": [0.9, 0.8], "state": ["COMPLETE"] * 2})
    reason = pick_trial(frame, PickSettings(knee=True), ["accuracy"], ["maximize"]).reason
    assert "every objective weighed equally" in reason and "cost" not in reason
