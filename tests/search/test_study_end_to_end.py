import dataclasses

import optuna
import pandas as pd
import pytest

from search.api import open_existing, run_search
from search.run.study import count_finished


@pytest.mark.slow
def test_tiny_study_runs_writes_tables_and_resumes_without_repeating(tiny_config):
    logs = []
    result = run_search(tiny_config, log=logs.append)
    study = result.study
    assert count_finished(study) == 4
    folder = tiny_config.study_dir
    for name in ("study.db", "dense.pt", "trials.csv", "pareto.csv", "config.yaml"):
        assert (folder / name).is_file(), name
    trials = pd.read_csv(folder / "trials.csv")
    assert len(trials) == 4 and set(trials["state"]) == {"COMPLETE"}
    for column in ("accuracy", "test_accuracy", "flops", "flops_dense", "energy_uj", "size_bytes",
                   "train_energy_j", "energy_source", "sparsity.features.0", "bits.features.0"):
        assert column in trials.columns, column
    # Trial 0 is the dense reference, trial 1 the enqueued uniform baseline.
    assert trials.loc[0, "flops"] == trials.loc[0, "flops_dense"]
    assert abs(trials.loc[1, "sparsity.features.2"] - 0.5) < 0.01   # snapped to the log grid
    assert trials.loc[1, "bits.features.2"] == 8
    assert (trials["flops"] <= trials["flops_dense"]).all()
    front = pd.read_csv(folder / "pareto.csv")
    assert set(front["trial"]) == {t.number for t in study.best_trials
                                   if "duplicate_of" not in t.user_attrs}
    assert any("front size" in line for line in logs)
    dense = result.dense_reference()
    assert 0.0 <= dense["accuracy"] <= 1.0 and dense["flops"] == trials.loc[0, "flops_dense"]

    # Same command again: nothing to do, nothing repeated.
    again = run_search(tiny_config, log=logs.append)
    assert len(again.study.trials) == 4
    # A bigger budget runs only the missing trials; finished ones are kept unchanged.
    bigger = dataclasses.replace(tiny_config, search=dataclasses.replace(tiny_config.search,
                                                                         n_trials=6))
    grown = run_search(bigger, log=logs.append).study
    assert count_finished(grown) == 6 and len(grown.trials) == 6
    old = {t.number: t.values for t in study.trials}
    assert all(grown.trials[n].values == v for n, v in old.items())
    reopened = open_existing(tiny_config)
    assert reopened.front()["trial"].tolist()
    # Every trial runs the dense shapes (unstructured): the resumed run measured no new latency
    # for them, so old and new trials keep the dense reference's figure.
    latencies = reopened.trials()["latency_ms"]
    assert len(latencies) == 6 and (latencies == dense["latency_ms"]).all()


def test_resume_with_a_different_space_is_refused(tiny_config):
    from search.schema import ConfigError

    run_search(dataclasses.replace(tiny_config, search=dataclasses.replace(
        tiny_config.search, n_trials=1)), log=lambda _: None)
    other = dataclasses.replace(tiny_config, space=dataclasses.replace(tiny_config.space,
                                                                       bits=(4, 8)))
    with pytest.raises(ConfigError, match="different search space .*bits.*use a new study name"):
        run_search(other, log=lambda _: None)


def test_a_study_from_before_a_space_option_existed_resumes_unless_the_option_is_used(tiny_config):
    """Space options added by a later version, at their defaults, keep older studies resumable."""
    from search.schema import ConfigError

    first = run_search(dataclasses.replace(tiny_config, search=dataclasses.replace(
        tiny_config.search, n_trials=1)), log=lambda _: None).study
    signature = first.user_attrs["space_signature"]
    for newer in ("parametrization", "max_offset", "max_sparsity", "sensitivity_max_drop"):
        del signature["settings"][newer]                 # as an older version stored it
    first.set_user_attr("space_signature", signature)
    grown = dataclasses.replace(tiny_config, search=dataclasses.replace(tiny_config.search,
                                                                        n_trials=2))
    assert len(run_search(grown, log=lambda _: None).study.trials) == 2
    changed = dataclasses.replace(grown, space=dataclasses.replace(
        grown.space, parametrization="global_offset"))
    with pytest.raises(ConfigError, match="different search space .*parametrization"):
        run_search(changed, log=lambda _: None)


def test_pruning_settings_are_part_of_a_study_but_older_studies_resume_with_any(tiny_config):
    """``pruning:`` changes what a trial trains (M of n:m, AGP steps, ...): a resume with other
    settings is refused, except for a study stored before the section was compared, which cannot
    say what its trials used."""
    from search.schema import ConfigError

    first = run_search(dataclasses.replace(tiny_config, search=dataclasses.replace(
        tiny_config.search, n_trials=1)), log=lambda _: None).study
    grown = dataclasses.replace(tiny_config, search=dataclasses.replace(tiny_config.search,
                                                                        n_trials=2))
    other = dataclasses.replace(grown, pruning=dataclasses.replace(grown.pruning,
                                                                   gradual_steps=3))
    with pytest.raises(ConfigError, match="different setup .*pruning.gradual_steps"):
        run_search(other, log=lambda _: None)
    definition = dict(first.user_attrs["definition"])
    del definition["pruning"]                            # as an older version stored it
    first.set_user_attr("definition", definition)
    assert len(run_search(other, log=lambda _: None).study.trials) == 2


def test_identical_candidate_is_not_trained_twice_and_baselines_are_labelled(tiny_config):
    from search.run.context import build_study_context
    from search.run.study import open_study
    from search.run.trials import run_trials

    config = dataclasses.replace(tiny_config, search=dataclasses.replace(
        tiny_config.search, n_trials=3, enqueue_dense=False, baseline_sparsities=()))
    context, space = build_study_context(config, log=lambda _: None)
    study = open_study(config, space)
    params = space.to_params(space.uniform_candidate(0.9, 8))
    study.enqueue_trial(params, user_attrs={"origin": "uniform"})
    study.enqueue_trial(params)
    run_trials(study, space, context, config, log=lambda _: None)
    first, second, third = study.trials
    assert second.user_attrs["duplicate_of"] == first.number
    assert second.values == first.values
    assert second.user_attrs["finetune_epochs_done"] == 0 < first.user_attrs["finetune_epochs_done"]
    assert "duplicate_of" not in first.user_attrs and "duplicate_of" not in third.user_attrs
    assert first.user_attrs["origin"] == "uniform" and third.user_attrs["origin"] == "sampler"
    # trials.csv writes the trial it reuses as a trial number (pandas made it 0.0: a column
    # other trials lack is float)
    from search.decide.tables import write_tables

    write_tables(study, config.study_dir, ["accuracy", "flops"], ["maximize", "minimize"])
    import csv

    with open(config.study_dir / "trials.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["duplicate_of"] for row in rows] == ["", str(first.number), ""]


def test_different_parameters_making_the_same_candidate_are_not_trained_twice(tiny_config):
    """global_offset: an offset clamped at a layer's bound gives the same candidate as a smaller
    one; the candidate, not the parameters, decides what is a duplicate."""
    from search.run.context import build_study_context
    from search.run.study import open_study
    from search.run.trials import run_trials

    config = dataclasses.replace(
        tiny_config, search=dataclasses.replace(tiny_config.search, n_trials=2,
                                                enqueue_dense=False, baseline_sparsities=()),
        space=dataclasses.replace(tiny_config.space, parametrization="global_offset",
                                  bits=(8,)))
    context, space = build_study_context(config, log=lambda _: None)
    study = open_study(config, space)
    params = space.to_params(space.uniform_candidate(0.0, 8))   # global at the dense end
    clamped = {**params, **{k: 0.3 for k in params if k.startswith("offset.")}}
    assert clamped != params and space.from_params(clamped) == space.from_params(params)
    study.enqueue_trial(params)
    study.enqueue_trial(clamped)
    run_trials(study, space, context, config, log=lambda _: None)
    first, second = study.trials
    assert first.params != second.params
    assert second.user_attrs["duplicate_of"] == first.number and second.values == first.values


def test_starting_candidates_include_global_magnitude_sweep(tiny_config):
    from search.run.context import build_study_context
    from search.run.starting import starting_candidates

    context, space = build_study_context(tiny_config, log=lambda _: None)
    found = starting_candidates(space, context, tiny_config)
    origins = [origin for origin, _ in found]
    assert origins == ["dense", "uniform", "global_magnitude"]
    glob = found[2][1]
    searched = space.searched_layers()
    # one threshold: the layers' sparsities differ, their weighted mean is the requested 0.5
    params = {layer.name: layer.params for layer in space.layers}
    mean = sum(glob.sparsity[n] * params[n] for n in searched) / sum(params[n] for n in searched)
    assert len({glob.sparsity[n] for n in searched}) > 1 and abs(mean - 0.5) < 0.05


def test_early_stopping_stops_dominated_candidates_at_a_rung(tiny_config):
    from search.run.early_stopping_settings import EarlyStoppingSettings

    search = dataclasses.replace(
        tiny_config.search, n_trials=8, baseline_sparsities=(0.5, 0.9),
        early_stopping=EarlyStoppingSettings(enabled=True, rungs=(1,), margin=0.0))
    config = dataclasses.replace(tiny_config, search=search,
                                 finetune=dataclasses.replace(tiny_config.finetune, epochs=3))
    result = run_search(config, log=lambda _: None)
    study = result.study
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(pruned) + len(complete) == 8 and pruned, [t.state for t in study.trials]
    for trial in pruned:
        assert trial.user_attrs["pruned_rung"] == 1 and trial.user_attrs["finetune_epochs_done"] == 1
        assert "dominated by trial" in trial.user_attrs["pruned_reason"]
        assert trial.user_attrs["flops"] > 0      # costs known before training are kept
    assert all(t.user_attrs["finetune_epochs_done"] == 3 for t in complete)
    # every trial that passed rung 1 recorded its accuracy there (what the learned bound reads)
    trained = [t for t in complete + pruned if "duplicate_of" not in t.user_attrs]
    assert trained and all(0 <= t.user_attrs["rung1_accuracy"] <= 1 for t in trained)
    assert "rung1_accuracy" in result.trials().columns
    assert result.status().pruned == len(pruned)


def test_early_stopping_needs_objectives_known_before_training():
    from search.config import config_from_dict
    from search.schema import ConfigError

    with pytest.raises(ConfigError, match="early_stopping needs 'accuracy' plus objectives"):
        config_from_dict({"search": {"early_stopping": {"enabled": True},
                                     "objectives": {"accuracy": "max", "train_seconds": "min"}}})


def test_a_resumed_study_does_not_draw_the_first_runs_candidates_again(tmp_path):
    """The sampler of a resumed run gets a seed of its own: with the first run's seed a random
    sampler (and TPE's start-up) drew the first run's candidates again, each reused as a
    duplicate, and the added budget went to nothing new."""
    from conftest import tiny_config_dict
    from search.config import config_from_dict
    from search.run.samplers import sampler_seed

    config = config_from_dict(tiny_config_dict(tmp_path, sampler="random", n_trials=5,
                                               refine={"within": []}))
    first = run_search(config, log=lambda _: None).study
    drawn = [t for t in first.trials if t.user_attrs.get("origin") == "sampler"]
    assert len(drawn) == 2
    bigger = dataclasses.replace(config, search=dataclasses.replace(config.search, n_trials=7))
    grown = run_search(bigger, log=lambda _: None).study
    new = grown.trials[5:]
    assert len(new) == 2 and all("duplicate_of" not in t.user_attrs for t in new)
    assert [t.params for t in new] != [t.params for t in drawn]
    # a new study keeps seed + worker; a study with trials gets a mixed, repeatable seed
    assert sampler_seed(7, 1, 0) == 8
    assert sampler_seed(7, 0, 5) == sampler_seed(7, 0, 5) not in {7, 8, sampler_seed(7, 1, 5)}


def test_baselines_cut_by_a_small_first_budget_run_when_it_grows(tiny_config):
    small = dataclasses.replace(tiny_config, search=dataclasses.replace(tiny_config.search,
                                                                        n_trials=2))
    first = run_search(small, log=lambda _: None).study
    assert [t.user_attrs["origin"] for t in first.trials] == ["dense", "uniform"]
    grown = run_search(tiny_config, log=lambda _: None).study          # 4 trials
    origins = [t.user_attrs["origin"] for t in grown.trials]
    assert origins[:3] == ["dense", "uniform", "global_magnitude"], origins
    assert grown.user_attrs["starting_count"] == 3
    assert len(grown.trials) == 4 and "duplicate_of" not in grown.trials[2].user_attrs


def test_a_worker_joining_at_the_same_thread_count_reports_the_stored_dense_latency(tiny_config):
    """A joined worker (``worker`` command, ``run --workers N``) builds its own context: at the
    thread count the dense reference was timed at it takes that figure for the dense shapes
    instead of timing them again (the old code gave its trials a second figure)."""
    from search.run.study import LATENCY_THREADS_ATTR
    from search.run.worker import run_worker

    first = run_search(tiny_config, log=lambda _: None)
    assert first.study.user_attrs[LATENCY_THREADS_ATTR] == tiny_config.threads == 1
    bigger = dataclasses.replace(tiny_config, search=dataclasses.replace(tiny_config.search,
                                                                         n_trials=6))
    run_worker(bigger, log=lambda _: None)
    trials = open_existing(bigger).trials()
    dense = first.dense_reference()["latency_ms"]
    assert len(trials) == 6 and (trials["latency_ms"] == dense).all()
