"""pareto --format table|csv|json|markdown --sort METRIC on the finished study."""
from __future__ import annotations

import io
import json

import pandas as pd

from search.decide.front_formats import markdown_table


def test_csv_holds_every_front_trial_sorted_best_first(study_cli, finished_study):
    code, out, _ = study_cli("pareto", "--format", "csv", "--sort", "flops")
    assert code == 0
    table = pd.read_csv(io.StringIO(out))
    front = finished_study.front()
    assert sorted(table["trial"]) == sorted(front["trial"])
    assert table["flops"].is_monotonic_increasing
    assert {"accuracy", "flops", "energy_uj", "test_accuracy"} <= set(table.columns)


def test_json_sorted_by_accuracy_descending(study_cli, finished_study):
    code, out, _ = study_cli("pareto", "--format", "json", "--sort", "accuracy")
    records = json.loads(out)
    accuracies = [r["accuracy"] for r in records]
    assert accuracies == sorted(accuracies, reverse=True)
    assert len(records) == len(finished_study.front())


def test_markdown_and_table(study_cli, finished_study):
    code, out, _ = study_cli("pareto", "--format", "markdown", "--all")
    lines = out.strip().splitlines()
    assert lines[0].startswith("| trial | val_acc | acc 95% CI |") and lines[1].startswith("|---|")
    assert len(lines) == 2 + len(finished_study.front())
    code, out, _ = study_cli("pareto", "--format", "markdown")     # the floor's title line first
    title, blank, header, *_ = out.strip().splitlines()
    dense = finished_study.dense_reference()["accuracy"]
    assert title.endswith(f"front points shown: accuracy >= {dense - 0.1:.4f} (dense {dense:.4f} "
                          f"- 0.10); --all shows every point")
    assert blank == "" and header.startswith("| trial |")
    code, out, _ = study_cli("pareto")
    assert "val_acc" in out and "MFLOPs" in out


def test_unknown_sort_metric_lists_the_valid_ones(study_cli):
    code, _, err = study_cli("pareto", "--sort", "speed")
    assert code == 2
    assert "--sort must be a recorded metric" in err and "'flops'" in err and "got 'speed'" in err


def test_markdown_escapes_pipes():
    text = markdown_table(pd.DataFrame({"a": ["x|y"], "b": [1]}))
    assert text.splitlines()[2] == "| x\\|y | 1 |"


def test_the_tables_are_rewritten_during_a_run(tmp_path, monkeypatch):
    """trials.csv and pareto.csv were written only when the run ended (a killed run left none,
    although the README calls pareto.csv the current front); now every TABLES_EVERY_S too."""
    import search.run.progress as progress
    from conftest import tiny_config_dict

    from search.api import run_search
    from search.config import config_from_dict

    monkeypatch.setattr(progress, "TABLES_EVERY_S", 0.0)
    seen: list[int] = []
    folder = tmp_path / "runs" / "tiny"

    def log(line: str) -> None:
        if line.startswith("[3/"):       # the third trial ended: the tables hold it already
            seen.append(len(pd.read_csv(folder / "trials.csv")))

    run_search(config_from_dict(tiny_config_dict(tmp_path, n_trials=4)), log=log)
    assert seen and seen[0] >= 3 and (folder / "pareto.csv").is_file()
