"""A one-shot channel candidate is the model it builds: sparsities that remove the same channels
(0.45 and 0.55 of 8 neurons both remove 4) are one model, trained once; the second trial reuses
the first's result (``duplicate_of``), as an identical candidate does."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from search.api import run_search


def _mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(36, 8), nn.ReLU(), nn.Linear(8, 3))


@pytest.mark.slow
def test_sparsities_that_remove_the_same_channels_are_trained_once(tmp_path):
    gen = torch.Generator().manual_seed(0)
    y = torch.arange(150) % 3
    x = torch.randn(3, 1, 6, 6, generator=gen)[y] + 0.5 * torch.randn(150, 1, 6, 6, generator=gen)
    result = run_search(model=_mlp, train=TensorDataset(x[:120], y[:120]),
                        test=TensorDataset(x[120:], y[120:]), study="c",
                        output_dir=str(tmp_path), threads=1, log=lambda _: None,
                        cost={"measure_latency": False}, dense={"epochs": 2},
                        finetune={"epochs": 1},
                        space={"granularities": ["channel"], "criteria": ["l2"], "bits": [32]},
                        search={"n_trials": 4, "baselines": ["uniform"],
                                "baseline_sparsities": [0.45, 0.55, 0.7], "baseline_bits": [32]})
    trials = result.trials().set_index("trial")
    # trial 0: the dense model; 1 and 2 remove 4 of the 8 neurons; 3 removes 6
    assert trials.loc[1, "channel_key"] == trials.loc[2, "channel_key"]
    assert trials.loc[2, "duplicate_of"] == 1 and trials.loc[2, "finetune_epochs_done"] == 0
    assert trials.loc[2, "accuracy"] == trials.loc[1, "accuracy"]
    assert trials.loc[3, "channel_key"] != trials.loc[1, "channel_key"]
    assert "duplicate_of" not in trials or trials["duplicate_of"].count() == 1


def _twin_study(state, attrs):
    import optuna

    study = optuna.create_study(directions=["maximize", "minimize"])
    study.add_trial(optuna.trial.create_trial(
        state=state, values=[0.9, 10.0] if state.name == "COMPLETE" else None,
        intermediate_values={} if state.name == "COMPLETE" else {1: 0.5},
        user_attrs={"candidate": {"sparsity.a": 0.5}, **attrs}))
    return study


def test_a_reused_result_keeps_its_own_origin_not_the_twins_refinement_parents():
    from optuna.trial import TrialState

    from search.run.objective import REFINED_KEY, find_duplicate, reuse

    study = _twin_study(TrialState.COMPLETE, {REFINED_KEY: [3], "origin": "refine",
                                              "accuracy": 0.9})
    twin = find_duplicate(study.trials, {"sparsity.a": 0.5})
    trial = study.ask()
    trial.set_user_attr("origin", "sampler")
    assert reuse(trial, twin) == [0.9, 10.0]
    assert REFINED_KEY not in trial.user_attrs and trial.user_attrs["origin"] == "sampler"
    assert trial.user_attrs["duplicate_of"] == 0 and trial.user_attrs["accuracy"] == 0.9


def test_a_candidate_stopped_early_before_is_stopped_again_without_training():
    """It was trained again for an epoch and stopped with the same reason."""
    import optuna
    from optuna.trial import TrialState

    from search.run.objective import find_duplicate, reuse

    study = _twin_study(TrialState.PRUNED, {"pruned_rung": 1, "finetune_epochs_done": 1,
                                            "pruned_reason": "after 1 fine-tune epoch(s) ..."})
    twin = find_duplicate(study.trials, {"sparsity.a": 0.5})
    assert twin is not None and twin.state == TrialState.PRUNED
    trial = study.ask()
    with pytest.raises(optuna.TrialPruned, match="as trial 0: after 1 fine-tune epoch"):
        reuse(trial, twin)
    assert trial.user_attrs["finetune_epochs_done"] == 0 and trial.user_attrs["pruned_rung"] == 1


def test_with_early_stopping_off_a_stopped_twin_is_not_reused():
    """A study resumed with early stopping off trains what an earlier run stopped."""
    from optuna.trial import TrialState

    from search.run.objective import find_duplicate

    study = _twin_study(TrialState.PRUNED, {"pruned_rung": 1})
    assert find_duplicate(study.trials, {"sparsity.a": 0.5}, stopped_too=False) is None
