"""Failing trials: exceptions and NaN losses fail the trial with its reason, the study goes on;
invalid candidates are rejected before training; too many failures stop the study cleanly."""
from __future__ import annotations

import dataclasses

import pytest

from conftest import tiny_config_dict
from search.api import run_search
from search.cli.main import EXIT_STUDY_STOPPED, main
from search.config import config_from_dict
from search.run.study import count_finished
from trainers.pruning import CRITERIA
from trainers.pruning.criteria import Criterion


class ExplodingCriterion(Criterion):
    """A criterion with a bug: every call raises."""

    name = "explodes"

    def score(self, weight, *, layer_name, seed, stats=None):
        raise RuntimeError(f"boom in {layer_name}")


def quiet(_line: str) -> None:
    pass


def test_a_raising_trial_fails_with_its_reason_and_the_study_goes_on(tmp_path, monkeypatch):
    monkeypatch.setitem(CRITERIA, "explodes", ExplodingCriterion)
    data = tiny_config_dict(tmp_path, sampler="random", max_consecutive_failures=10)
    data["space"] = {"criteria": ["magnitude", "explodes"], "bits": [8, 32]}
    result = run_search(config_from_dict(data), log=quiet)
    trials = result.study.trials
    failed = [t for t in trials if t.state.name == "FAIL"]
    assert count_finished(result.study) == 4
    assert failed, "the seeded sampler should have drawn the exploding criterion"
    for trial in failed:
        assert trial.user_attrs["candidate"]["criterion"] == "explodes"
        assert trial.user_attrs["fail_reason"].startswith("RuntimeError: boom in ")
        assert "ExplodingCriterion" in trial.user_attrs["fail_traceback"] or \
            "boom" in trial.user_attrs["fail_traceback"]
    assert all(t.user_attrs["candidate"]["criterion"] == "magnitude"
               for t in trials if t.state.name == "COMPLETE")


def test_nan_losses_stop_the_study_after_n_consecutive_failures(tmp_path, capsys):
    data = tiny_config_dict(tmp_path, max_consecutive_failures=2)
    data["finetune"] = {"epochs": 1, "lr": 1e20}     # Adam steps of 1e20: the loss overflows
    config = tmp_path / "study.yaml"
    import yaml
    config.write_text(yaml.safe_dump(data))
    assert main(["run", str(config)]) == EXIT_STUDY_STOPPED
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("error: study 'tiny' stopped: 2 consecutive trials failed "
                             "(search.max_consecutive_failures: 2); last reason: "
                             "TrainingDiverged: loss became ")
    assert "0/4 trials finished" in err[0] and "TrainingDiverged x2" in err[0]
    # the advice says what resumes and what needs a new study (a lower lr is a new setup)
    assert "a changed setting such as finetune.lr makes a different study" in err[0]
    import optuna
    from search.run.storage import open_storage
    study = optuna.load_study(study_name="tiny", storage=open_storage(
        f"sqlite:///{tmp_path / 'runs' / 'tiny' / 'study.db'}", heartbeat=False))
    states = [t.state.name for t in study.trials]
    assert states[:2] == ["FAIL", "FAIL"] and set(states[2:]) <= {"WAITING"}  # baselines queued
    assert all("TrainingDiverged" in t.user_attrs["fail_reason"] for t in study.trials[:2])
    assert (tmp_path / "runs" / "tiny" / "trials.csv").is_file()   # tables written anyway


def test_invalid_candidates_are_rejected_before_training_and_not_counted(tmp_path):
    data = tiny_config_dict(tmp_path, sampler="random", n_trials=3, baseline_sparsities=[0.95],
                            baseline_bits=[32])
    data["model"] = {"name": "mlp", "options": {"hidden": [8]}}
    data["space"] = {"classifier": "include", "bits": [8, 32]}
    logs: list[str] = []
    study = run_search(config_from_dict(data), log=logs.append).study
    invalid = study.trials[1]             # the uniform 95 % baseline: 2 of 32 classifier weights
    assert invalid.state.name == "FAIL" and invalid.user_attrs["invalid"] is True
    assert invalid.user_attrs["fail_reason"].startswith("invalid: classifier 'net.3' has every "
                                                         "weight of output(s) [")
    assert "accuracy" not in invalid.user_attrs and "train_seconds" not in invalid.user_attrs
    assert any("trial 1 INVALID (not trained)" in line for line in logs)
    assert count_finished(study) == 3     # invalid candidates don't use the budget
    assert len(study.trials) >= 4


def test_same_config_and_seed_give_the_same_candidates_and_metrics(tmp_path):
    data = tiny_config_dict(tmp_path, sampler="nsga2", population_size=2, n_trials=6)
    data["device"] = "cpu"
    first = config_from_dict(data)
    second = dataclasses.replace(first, output_dir=str(tmp_path / "again"))
    runs = [run_search(c, log=quiet).study.trials for c in (first, second)]
    measured = ("seconds", "energy_j", "latency", "time_saved", "energy_saved", "traceback")
    assert len(runs[0]) == len(runs[1]) == 6
    for a, b in zip(*runs):
        assert a.params == b.params and a.state == b.state
        assert a.values == pytest.approx(b.values, rel=1e-6, abs=1e-9)
        for key in [k for k in a.user_attrs if not any(m in k for m in measured)]:
            if isinstance(a.user_attrs[key], float):
                assert a.user_attrs[key] == pytest.approx(b.user_attrs[key], rel=1e-6), key
            else:
                assert a.user_attrs[key] == b.user_attrs[key], key


def test_starting_points_enqueued_once_even_after_a_kill_mid_loop(tmp_path):
    """A kill while the baselines are being enqueued: the next run enqueues the missing ones."""
    from search.run.context import build_study_context
    from search.run.starting import enqueue_starting_points, starting_candidates
    from search.run.study import open_study

    config = config_from_dict(tiny_config_dict(tmp_path, baseline_sparsities=[0.5, 0.8]))
    context, space = build_study_context(config, log=quiet)
    study = open_study(config, space)
    wanted = [space.to_params(c) for _, c in starting_candidates(space, context, config)]
    assert len(wanted) >= 3
    study.set_user_attr("starting_enqueued", False)          # the state a kill leaves ...
    study.enqueue_trial(wanted[0])                            # ... after the first enqueue
    enqueue_starting_points(study, space, context, config)
    enqueue_starting_points(study, space, context, config)    # and once more: nothing new
    queued = [t.system_attrs["fixed_params"] for t in study.trials]
    assert len(queued) == len(wanted) and all(p in queued for p in wanted)
    assert study.user_attrs["starting_enqueued"] is True


def test_settings_added_by_a_later_version_do_not_block_a_resume(tmp_path):
    """A study stored before a config key existed resumes; a changed known key is refused."""
    import optuna

    from search.schema import ConfigError
    from search.run.storage import open_storage
    from search.run.study import check_resumable, study_definition

    config = config_from_dict(tiny_config_dict(tmp_path))
    stored = study_definition(config)
    del stored["finetune"]["optimizer"]                 # as if the key did not exist back then
    study = optuna.create_study(study_name="tiny", storage=open_storage(
        f"sqlite:///{config.study_dir / 'study.db'}"), directions=["maximize"] * 3)
    study.set_user_attr("definition", stored)
    assert check_resumable(config) is True
    # the same key set to a non-default value is a real difference
    changed = dataclasses.replace(config, finetune=dataclasses.replace(config.finetune,
                                                                       optimizer="sgd"))
    with pytest.raises(ConfigError, match=r"config.finetune.optimizer: stored None, now 'sgd'"):
        check_resumable(changed)
    stored["finetune"]["epochs"] = 99
    study.set_user_attr("definition", stored)
    with pytest.raises(ConfigError, match=r"config.finetune.epochs: stored 99, now 1"):
        check_resumable(config)
