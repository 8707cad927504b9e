"""Screening at rung 0: the learned map from a candidate's figures before fine-tuning to its final
accuracy, when it stops a candidate, and when it says it cannot."""
from __future__ import annotations

import numpy as np
import optuna
import pytest

from search.run.early_stopping import SCREENING_NOTE, FrontRungCheck
from search.run.early_stopping_settings import EarlyStoppingSettings, ScreeningSettings
from search.run.screening import fit_rung0_map
from search.schema import ConfigError
from trainers.rungs import StopCandidate

METRICS = ["accuracy", "flops"]
DIRECTIONS = ["maximize", "minimize"]


def study_of(rows):
    """Fine-tuned trials: (final accuracy, flops, rung-0 accuracy, rung-0 KL)."""
    study = optuna.create_study(directions=DIRECTIONS)
    for final, flops, accuracy, kl in rows:
        study.add_trial(optuna.trial.create_trial(
            values=[final, flops], user_attrs={"rung0_accuracy": accuracy, "rung0_kl": kl}))
    return study


def monotone_rows(n=12, seed=0):
    """Final accuracy rising with rung-0 accuracy (and falling with KL), a little noise."""
    rng = np.random.default_rng(seed)
    rung0 = np.linspace(0.2, 0.9, n)
    final = 0.6 + 0.4 * rung0 + rng.normal(0, 0.005, n)
    return [(float(f), 100.0 + i, float(a), float(2 - 2 * a)) for i, (f, a) in
            enumerate(zip(final, rung0))]


def test_nothing_is_fitted_before_min_trials_fine_tuned():
    study = study_of(monotone_rows(5))
    fitted, note = fit_rung0_map(study.trials, 0, ScreeningSettings(min_trials=6))
    assert fitted is None and note == "rung 0 waits for 6 fine-tuned trials (5 so far)"


def test_the_map_is_monotone_and_optimistic_about_the_trials_it_saw():
    study = study_of(monotone_rows(12))
    fitted, note = fit_rung0_map(study.trials, 0, ScreeningSettings(min_trials=10, quantile=1.0))
    assert fitted is not None and fitted.correlation > 0.9 and "rank correlation" in note
    grid = [fitted.optimistic({"rung0_accuracy": a, "rung0_kl": 2 - 2 * a})
            for a in np.linspace(0, 1, 21)]
    assert all(b <= c + 1e-12 for b, c in zip(grid, grid[1:]))          # monotone
    for trial in study.trials:                 # quantile 1: no seen trial ends above its bound
        assert fitted.optimistic(trial.user_attrs) >= trial.values[0] - 1e-12
    assert fitted.optimistic({}) is None                     # a figure it was not given


def test_the_map_is_fitted_once_per_set_of_fine_tuned_trials():
    """Candidates screened out or stopped in between leave the fine-tuned trials as they were:
    the same map serves them; one more fine-tuned trial (or other settings) fits a new one."""
    study = study_of(monotone_rows(12))
    settings = ScreeningSettings(min_trials=10)
    fitted, _ = fit_rung0_map(study.trials, 0, settings)
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.PRUNED,
                                              user_attrs={"rung0_accuracy": 0.1}))
    assert fit_rung0_map(study.trials, 0, settings)[0] is fitted
    assert fit_rung0_map(study.trials, 0, ScreeningSettings(min_trials=10, quantile=0.5)
                         )[0] is not fitted
    study.add_trial(optuna.trial.create_trial(
        values=[0.95, 99.0], user_attrs={"rung0_accuracy": 0.95, "rung0_kl": 0.1}))
    refitted, note = fit_rung0_map(study.trials, 0, settings)
    assert refitted is not fitted and refitted.trials == 13 and "over 13 trials" in note


def test_kl_ranks_candidates_when_accuracy_after_pruning_is_at_chance():
    rows = [(f, flops, 0.25, kl) for f, flops, _, kl in monotone_rows(12)]   # all at chance
    fitted, note = fit_rung0_map(study_of(rows).trials, 0, ScreeningSettings())
    assert fitted is not None and fitted.feature == "rung0_kl", note


def test_a_weak_relation_turns_screening_off_and_says_why():
    rng = np.random.default_rng(1)
    rows = [(float(f), 100.0, float(a), float(k))
            for f, a, k in zip(rng.uniform(0.8, 0.9, 14), rng.uniform(0, 1, 14),
                               rng.uniform(0, 1, 14))]
    fitted, note = fit_rung0_map(study_of(rows).trials, 0,
                                 ScreeningSettings(min_correlation=0.9))
    assert fitted is None
    assert note.startswith("rung 0 says little here (rank correlation") and "over 14 trials" in note


def check(study, flops, **screening):
    return FrontRungCheck(study, METRICS, DIRECTIONS, {"flops": flops},
                          EarlyStoppingSettings(enabled=True), trial=study.ask()), \
        ScreeningSettings(**screening)


def test_screen_stops_a_dominated_candidate_and_records_its_figures():
    study = study_of(monotone_rows(12))
    stop, settings = check(study, 500.0, quantile=0.5)    # dearer than every finished trial
    with pytest.raises(StopCandidate, match="screened out before fine-tuning: rung0_") as caught:
        stop.screen({"rung0_accuracy": 0.25, "rung0_kl": 1.5, "rung0_seconds": 0.01}, settings)
    assert caught.value.epoch == 0
    attrs = study.trials[-1].user_attrs
    assert attrs["rung0_accuracy"] == 0.25 and attrs[SCREENING_NOTE].startswith("rung 0 screens")
    # A candidate cheaper than every finished trial is never dominated, however it looks.
    cheap, settings = check(study, 1.0, quantile=0.5)
    cheap.screen({"rung0_accuracy": 0.0, "rung0_kl": 3.0, "rung0_seconds": 0.01}, settings)
    # Too few fine-tuned trials: no stop, and the trial says so.
    early, settings = check(study_of(monotone_rows(3)), 500.0)
    early.screen({"rung0_accuracy": 0.0, "rung0_kl": 3.0, "rung0_seconds": 0.01}, settings)


@pytest.mark.parametrize("field,value", [("min_trials", 1), ("min_correlation", 2.0),
                                         ("quantile", 1.5), ("bn_batches", -1),
                                         ("samples", 0)])
def test_bad_screening_settings_name_the_field(field, value):
    with pytest.raises(ConfigError, match=f"search.early_stopping.screening.{field} must"):
        ScreeningSettings(**{field: value})


def test_hypervolume_gain_is_what_a_point_adds_to_the_front():
    from search.run.screening import hypervolume_gain

    study = study_of([(0.9, 50.0, 0.5, 1.0)])
    dense = {"flops": 100.0}
    # Normalised: trial 0 is (loss -0.9, 0.5) against the reference (0, 1.1): 0.9 x 0.6.
    inside = hypervolume_gain([0.8, 60.0], study.trials, METRICS, DIRECTIONS, dense)
    assert inside == pytest.approx(0.0)                           # dominated: adds nothing
    cheaper = hypervolume_gain([0.5, 20.0], study.trials, METRICS, DIRECTIONS, dense)
    assert cheaper == pytest.approx(0.5 * (0.5 - 0.2))            # the box left of trial 0


def test_hypervolume_gain_of_a_metric_below_zero_is_not_zero():
    """A custom metric such as a negative loss: against the reference 0 no point added volume, so
    ranking screened every candidate out; the reference goes below the lowest value instead."""
    from search.run.screening import hypervolume_gain

    study = study_of([(-0.9, 50.0, 0.5, 1.0)])
    better = hypervolume_gain([-0.3, 50.0], study.trials, METRICS, DIRECTIONS, {"flops": 100.0})
    assert better > 0.0
    worse = hypervolume_gain([-1.2, 80.0], study.trials, METRICS, DIRECTIONS, {"flops": 100.0})
    assert worse == pytest.approx(0.0)


def test_ranking_keeps_the_top_share_once_half_the_window_is_known():
    from search.run.screening import ranked_out

    settings = ScreeningSettings(fine_tune_share=0.25, window=8)
    assert ranked_out(0.0, [1.0, 2.0, 3.0], settings)[0] is False           # 3 < 8 // 2 known
    recent = [0.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    out, why = ranked_out(1.5, recent, settings)
    assert out and "below the top 25% of the last 8 candidates'" in why
    assert ranked_out(6.0, recent, settings)[0] is False
    assert ranked_out(0.0, [0.0] * 8, settings)[0] is True                 # no gain: never kept
    assert ranked_out(0.0, recent, ScreeningSettings())[0] is False        # share 1: no ranking


def test_screen_ranks_candidates_by_predicted_gain(tmp_path):
    study = study_of(monotone_rows(12))
    study.set_user_attr("dense_reference", {"flops": 200.0})
    settings = ScreeningSettings(fine_tune_share=0.5, window=4, quantile=1.0)
    gains = []
    for flops in (90.0, 80.0, 70.0, 60.0):        # cheaper and cheaper: ever larger gains
        stop = FrontRungCheck(study, METRICS, DIRECTIONS, {"flops": flops},
                              EarlyStoppingSettings(enabled=True), trial=study.ask())
        stop.screen({"rung0_accuracy": 0.6, "rung0_kl": 0.8}, settings)
        gains.append(study.trials[-1].user_attrs["rung0_gain"])
        study.tell(study.trials[-1].number, state=optuna.trial.TrialState.PRUNED)
    assert gains == sorted(gains) and gains[0] > 0
    worse = FrontRungCheck(study, METRICS, DIRECTIONS, {"flops": 95.0},
                           EarlyStoppingSettings(enabled=True), trial=study.ask())
    with pytest.raises(StopCandidate, match="predicted hypervolume gain"):
        worse.screen({"rung0_accuracy": 0.6, "rung0_kl": 0.8}, settings)
    # The same candidate as a refinement of the front (search.refine) is not ranked: it is
    # placed where users pick a model, not where the hypervolume grows most.
    refinement = study.ask()
    refinement.set_user_attr("origin", "refine")
    FrontRungCheck(study, METRICS, DIRECTIONS, {"flops": 95.0},
                   EarlyStoppingSettings(enabled=True), trial=refinement
                   ).screen({"rung0_accuracy": 0.6, "rung0_kl": 0.8}, settings)
    assert "rung0_gain" not in study.trials[-1].user_attrs
