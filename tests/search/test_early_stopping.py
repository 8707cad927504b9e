"""Multi-objective early stopping: the optimistic point of a candidate at a rung, and when it stops."""
from __future__ import annotations

import optuna
import pytest

from search.run.early_stopping import FrontRungCheck, rung_key
from search.run.early_stopping_settings import EarlyStoppingSettings
from trainers.rungs import StopCandidate

METRICS = ["accuracy", "flops"]
DIRECTIONS = ["maximize", "minimize"]


def finished_study(rows):
    """A study of finished trials: (final accuracy, flops, accuracy seen after 1 epoch)."""
    study = optuna.create_study(directions=DIRECTIONS)
    for accuracy, flops, at_rung in rows:
        study.add_trial(optuna.trial.create_trial(
            values=[accuracy, flops], user_attrs={rung_key(1): at_rung}))
    return study


def check(study, flops, **settings):
    return FrontRungCheck(study, METRICS, DIRECTIONS, {"flops": flops},
                          EarlyStoppingSettings(enabled=True, rungs=(1,), **settings))


def test_fixed_margin_stops_a_candidate_dominated_even_with_the_margin():
    study = finished_study([(0.95, 100.0, 0.60)])
    stop = check(study, 200.0, margin=0.03, learned_bound=False)
    with pytest.raises(StopCandidate, match="epoch.s. val accuracy 0.8700, optimistic final "
                                            "0.9000, is dominated by trial 0"):
        stop(1, 0.87)
    study.set_user_attr("metric", "f1_macro")          # the reason names the study's metric
    with pytest.raises(StopCandidate, match="val f1_macro 0.8700, optimistic final 0.9000"):
        check(study, 200.0, margin=0.03, learned_bound=False)(1, 0.87)
    stop(1, 0.93)              # 0.96 > 0.95: could still beat trial 0
    check(study, 50.0, learned_bound=False)(1, 0.10)   # cheaper than every trial: never dominated


def test_learned_bound_keeps_a_candidate_that_finished_trials_show_can_recover():
    # Trial 0 looked worse (0.60) after one epoch than our candidate (0.70) and ended at 0.95;
    # trial 1 (cheaper, 0.94) would dominate the fixed-margin point 0.73.
    study = finished_study([(0.95, 300.0, 0.60), (0.94, 100.0, 0.90)])
    learned = check(study, 200.0, margin=0.03)
    assert learned.optimistic(1, 0.70, study.trials) == 0.95
    learned(1, 0.70)                                   # 0.95 at 200 FLOPs: not dominated
    with pytest.raises(StopCandidate):
        check(study, 200.0, margin=0.03, learned_bound=False)(1, 0.70)
    # A candidate worse at the rung than every finished trial has only its margin.
    assert learned.optimistic(1, 0.50, study.trials) == pytest.approx(0.53)
    with pytest.raises(StopCandidate, match="dominated by trial 1"):
        learned(1, 0.50)


def test_each_rung_accuracy_is_recorded_on_the_trial():
    study = finished_study([])
    trial = study.ask()
    FrontRungCheck(study, METRICS, DIRECTIONS, {"flops": 1.0},
                   EarlyStoppingSettings(enabled=True, rungs=(1,)), trial=trial)(1, 0.5)
    assert study.trials[-1].user_attrs[rung_key(1)] == 0.5


def test_the_run_says_how_candidates_stop():
    learned = EarlyStoppingSettings(rungs=(1, 3), margin=0.05).describe()
    assert "after 1/3 fine-tune epoch(s)" in learned and "+ 0.05, or the best final" in learned
    fixed = EarlyStoppingSettings(learned_bound=False).describe()
    assert "(val accuracy + 0.03) is dominated" in fixed
    # Only the rungs before the last fine-tune epoch are promised.
    assert "after 1 fine-tune epoch(s)" in EarlyStoppingSettings().describe(last_epoch=2)
    none = EarlyStoppingSettings().describe(last_epoch=1)
    assert "no rung (1/2) comes before the last fine-tune epoch (1)" in none
    assert "stops after" not in none


def test_only_trials_within_the_constraints_stop_a_candidate():
    """The front is the feasible trials': an infeasible trial (over a size bound that is not an
    objective) stopped feasible candidates it dominated."""
    study = optuna.create_study(directions=DIRECTIONS)
    study.add_trial(optuna.trial.create_trial(values=[0.95, 100.0], user_attrs={rung_key(1): 0.6},
                                              system_attrs={"constraints": [4000.0]}))
    check(study, 200.0, margin=0.03, learned_bound=False)(1, 0.87)     # not stopped
    study.add_trial(optuna.trial.create_trial(values=[0.95, 100.0], user_attrs={rung_key(1): 0.6},
                                              system_attrs={"constraints": [-10.0]}))
    with pytest.raises(StopCandidate, match="dominated by trial 1"):
        check(study, 200.0, margin=0.03, learned_bound=False)(1, 0.87)


def test_a_runs_views_read_the_studys_fixed_attributes_once():
    from search.run.study_view import StudyView

    study = optuna.create_study()
    study.set_user_attr("metric", "top5")
    fixed: dict = {}
    assert StudyView(study, fixed=fixed).user_attr("metric") == "top5"
    assert StudyView(study, fixed=fixed).user_attr("dense_reference") is None   # not yet set
    study.set_user_attr("metric", "changed behind the run's back")
    study.set_user_attr("dense_reference", {"flops": 1.0})
    later = StudyView(study, fixed=fixed)
    assert later.user_attr("metric") == "top5"                  # kept from the first read
    assert later.user_attr("dense_reference") == {"flops": 1.0}  # a missing one is read again
    assert StudyView(study).user_attr("metric") == "changed behind the run's back"
