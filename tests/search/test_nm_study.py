"""An n:m study records the sparsity N:M applies: asked sparsities that round to the same N are
one candidate (trained once), and asking past the last pattern gives a valid 1:M model."""
from __future__ import annotations

import dataclasses

import optuna
import pytest


@pytest.mark.slow
def test_nm_trials_record_applied_sparsity_reuse_duplicates_and_stay_valid(tiny_config):
    from search.run.context import build_study_context
    from search.run.study import open_study
    from search.run.trials import run_trials
    from trainers.trial import build_candidate_model, mask_sparsity

    config = dataclasses.replace(
        tiny_config,
        search=dataclasses.replace(tiny_config.search, n_trials=3, enqueue_dense=False,
                                   baseline_sparsities=()),
        space=dataclasses.replace(tiny_config.space, granularities=("n:m",),
                                  criteria=("magnitude",), bits=(8,),
                                  sparsity=dataclasses.replace(tiny_config.space.sparsity,
                                                               scale="linear", step=0.01)))
    context, space = build_study_context(config, log=lambda _: None)
    study = open_study(config, space)
    searched = space.searched_layers()
    for asked in (0.21, 0.29, 0.9):
        study.enqueue_trial({f"sparsity.{n}": asked for n in searched})
    run_trials(study, space, context, config, log=lambda _: None)
    first, second, third = study.trials
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 3
    assert first.user_attrs["candidate"] == second.user_attrs["candidate"]
    assert second.user_attrs["duplicate_of"] == first.number and second.values == first.values
    # features.0 has 1 input channel: no block of 4, it stays dense; the others keep 3 of 4.
    assert first.user_attrs["candidate"]["sparsity.features.0"] == 0.0
    assert first.user_attrs["candidate"]["sparsity.features.2"] == 0.25
    assert "invalid" not in third.user_attrs and "duplicate_of" not in third.user_attrs
    recorded = space.from_params(third.params)
    assert recorded.sparsity["features.0"] == 0.0
    assert all(recorded.sparsity[n] == 0.75 for n in searched if n != "features.0")
    measured = mask_sparsity(build_candidate_model(recorded, context))
    for name, value in recorded.sparsity.items():
        assert measured.get(name, 0.0) == pytest.approx(value, abs=1e-6), name
