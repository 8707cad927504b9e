import dataclasses

import optuna
import pandas as pd
import pytest

from search.api import open_existing, run_search
from search.study import count_finished


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
    assert trials.loc[1, "sparsity.features.2"] == 0.5 and trials.loc[1, "bits.features.2"] == 8
    assert (trials["flops"] <= trials["flops_dense"]).all()
    front = pd.read_csv(folder / "pareto.csv")
    assert set(front["trial"]) == {t.number for t in study.best_trials}
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
    assert open_existing(tiny_config).front()["trial"].tolist()


def test_resume_with_a_different_space_is_refused(tiny_config):
    from search.schema import ConfigError

    run_search(dataclasses.replace(tiny_config, search=dataclasses.replace(
        tiny_config.search, n_trials=1)), log=lambda _: None)
    other = dataclasses.replace(tiny_config, space=dataclasses.replace(tiny_config.space,
                                                                       bits=(4, 8)))
    with pytest.raises(ConfigError, match="different search space .*bits.*use a new study name"):
        run_search(other, log=lambda _: None)
