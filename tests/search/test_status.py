"""status: counts, budget, front size and hypervolume of the finished study (API and CLI)."""
from __future__ import annotations

import json

from search.decide.hypervolume import study_hypervolume


def test_status_counts_the_finished_study(finished_study):
    status = finished_study.status()
    trials = finished_study.trials()
    assert status.study == "finished"
    assert status.complete == len(trials) == 7
    assert status.failed == status.running == 0
    assert status.budget == 7 and status.budget_left == 0
    assert status.front_size == len(finished_study.front())
    assert 0 < status.trial_seconds and status.trial_seconds <= status.wall_seconds + 1e-6
    objectives = finished_study.config.search.objectives
    expected = study_hypervolume(trials, objectives.metrics, objectives.directions,
                                 finished_study.dense_reference())
    assert status.hypervolume == expected > 0
    assert status.best_accuracy == trials["accuracy"].max()
    assert status.finetune_epochs == trials["finetune_epochs_done"].sum() > 0
    twins = trials["duplicate_of"].notna().sum() if "duplicate_of" in trials else 0
    assert status.duplicates == twins


def test_status_cli_table_and_json(study_cli, finished_study):
    code, out, _ = study_cli("status")
    assert code == 0
    assert "7 complete, 0 running, 0 failed" in out
    assert "7 trials, 0 left" in out
    status = finished_study.status()
    assert (f"{status.finetune_epochs} fine-tune epochs; 0 candidates screened out before "
            f"fine-tuning, 0 stopped early, {status.duplicates} duplicates reused untrained") in out
    code, out, _ = study_cli("status", "--json")
    data = json.loads(out)
    assert data["front_size"] == len(finished_study.front())
    assert data["hypervolume"] == finished_study.status().hypervolume


def test_status_of_a_missing_study_exits_2(study_cli, capsys, tmp_path):
    from search.cli.main import main

    code = main(["status", "--output-dir", str(tmp_path), "--study", "nothing"])
    assert code == 2
    assert "no study storage at" in capsys.readouterr().err


def test_status_without_study_names_the_studies_of_the_folder(finished_study, capsys):
    from search.cli.main import main

    code = main(["status", "--output-dir", finished_study.config.output_dir])   # no "default"
    assert code == 2
    assert (f"the studies in '{finished_study.config.output_dir}' are finished: give --study "
            f"NAME") in capsys.readouterr().err


def test_a_reused_duplicate_is_one_point_of_the_front():
    import optuna

    from search.decide.status import study_status

    study = optuna.create_study(directions=["maximize", "minimize"])
    point = {"accuracy": 0.9, "flops": 10.0, "finetune_epochs_done": 4}
    study.add_trial(optuna.trial.create_trial(values=[0.9, 10.0], user_attrs=point))
    study.add_trial(optuna.trial.create_trial(
        values=[0.9, 10.0], user_attrs={**point, "finetune_epochs_done": 0, "duplicate_of": 0}))
    status = study_status(study, ["accuracy", "flops"], ["maximize", "minimize"], budget=2)
    assert status.front_size == 1 and status.duplicates == 1 and status.finetune_epochs == 4
    from search.decide.status import format_status

    assert "best val acc  " in format_status(status)
    study.set_user_attr("metric", "f1_macro")      # named after the study's metric
    status = study_status(study, ["accuracy", "flops"], ["maximize", "minimize"], budget=2)
    assert "best val f1_macro  0.9000" in format_status(status)


def test_a_study_is_read_with_its_own_objectives_whatever_config_opens_it(tmp_path):
    """Opened by `--storage URL --study NAME` (or with another study's config), a study of
    {accuracy, size_bytes} was judged on the default objectives: another front, knee and
    hypervolume than its own."""
    from conftest import tiny_config_dict

    from search.api import run_search
    from search.config import config_from_dict
    from search.study_result import open_existing

    raw = tiny_config_dict(tmp_path, n_trials=4,
                           objectives={"accuracy": "max", "size_bytes": "min"})
    own = run_search(config_from_dict(raw), log=lambda _: None)
    url = f"sqlite:///{own.folder / 'study.db'}"
    other = config_from_dict({"study": "tiny", "search": {"storage": url}})   # default objectives
    reopened = open_existing(other)
    assert reopened.config.search.objectives.metrics == ["accuracy", "size_bytes"]
    assert list(reopened.front()["trial"]) == list(own.front()["trial"])
    assert reopened.status().hypervolume == own.status().hypervolume
