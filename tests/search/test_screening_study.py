"""Screening and an epoch budget in a real study: candidates screened out at rung 0 are stored
(PRUNED at rung 0, their figures, no epoch spent) and counted by status; a budget in fine-tune
epochs is never overshot and resumes like a trial budget."""
from __future__ import annotations

import json
import re

import optuna
import yaml

from conftest import tiny_config_dict
from search.cli.main import main
from search.run.storage import open_storage

EPOCHS = 2


def write_config(tmp_path, **search):
    data = tiny_config_dict(tmp_path, **search)
    data["finetune"]["epochs"] = EPOCHS
    data["cost"] = {"measure_latency": False, "measure_test_accuracy": False}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def trials_of(tmp_path):
    url = f"sqlite:///{tmp_path / 'runs' / 'tiny' / 'study.db'}"
    return optuna.load_study(study_name="tiny", storage=open_storage(url)).get_trials()


def spent(trials):
    return sum(t.user_attrs.get("finetune_epochs_done", 0) for t in trials
               if t.state.is_finished() and t.state.name != "FAIL")


def test_screened_candidates_are_stored_and_counted(tmp_path, capsys):
    screening = {"min_trials": 4, "min_correlation": -1.0, "quantile": 0.0, "samples": 20}
    path = write_config(tmp_path, n_trials=24, early_stopping={"screening": screening})
    assert main(["run", str(path)]) == 0
    out = capsys.readouterr().out
    trials = trials_of(tmp_path)
    screened = [t for t in trials if t.state.name == "PRUNED" and t.user_attrs["pruned_rung"] == 0]
    assert screened, out
    for trial in screened:
        assert trial.user_attrs["finetune_epochs_done"] == 0
        assert 0 <= trial.user_attrs["rung0_accuracy"] <= 1 and "flops" in trial.user_attrs
        assert trial.user_attrs["pruned_reason"].startswith("screened out before fine-tuning")
        # a refinement's line names its parents: "trial 19 (refines 12/13) screened out ..."
        assert re.search(rf"trial {trial.number}( \(refines [\d/]+\))? screened out before "
                         rf"fine-tuning", out), out
    assert "rung 0 waits for 4 fine-tuned trials" in out and "rung 0 screens" in out
    assert "sparsity upper bounds (space.sparsity.high 0.99, per-layer caps applied): " in out
    fine_tuned = [t for t in trials if t.state.name == "COMPLETE"]
    assert all("rung0_kl" in t.user_attrs for t in fine_tuned if "duplicate_of" not in t.user_attrs
               and t.user_attrs.get("origin") != "dense")
    # Rung 0 measured a calibration subset of 20 validation samples, and says so.
    assert {t.user_attrs.get("rung0_samples") for t in trials if "rung0_kl" in t.user_attrs} \
        == {20}
    assert main(["status", "--output-dir", str(tmp_path / "runs"), "--study", "tiny"]) == 0
    assert f"{len(screened)} candidates screened out before fine-tuning" in capsys.readouterr().out


def test_an_epoch_budget_is_never_overshot_and_resumes(tmp_path, capsys):
    path = write_config(tmp_path, n_trials=200, budget_epochs=9)
    assert main(["run", str(path)]) == 0
    first = spent(trials_of(tmp_path))
    assert 9 - EPOCHS < first <= 9
    out = capsys.readouterr().out
    assert f"| {first}/9 epochs] trial" in out                          # the progress line
    assert out.count("fine-tune epoch budget reached") == 1, out        # why it ended, once
    assert f"{first}/9 epochs spent or held" in out and "/200 trials finished" in out
    # Resume with a larger epoch budget: goes on from what the storage holds.
    assert main(["run", str(path), "--budget-epochs", "15"]) == 0
    out = capsys.readouterr().out
    total = spent(trials_of(tmp_path))
    assert 15 - EPOCHS < total <= 15 and total > first, out
    assert main(["run", str(path), "--budget-epochs", "15"]) == 0          # nothing left
    assert "budget of 15 fine-tune epochs is spent" in capsys.readouterr().out
    assert spent(trials_of(tmp_path)) == total
    assert main(["status", "--output-dir", str(tmp_path / "runs"), "--study", "tiny",
                 "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["budget_epochs"] == 15 and status["finetune_epochs"] == total


def test_a_bad_epoch_budget_names_the_field(tmp_path, capsys):
    path = write_config(tmp_path, budget_epochs=0)
    assert main(["run", str(path)]) == 2
    assert "search.budget_epochs must be an integer >= 1" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
