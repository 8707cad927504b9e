"""reevaluate: front trials retrained with other seeds, stored apart; pick --reevaluated reads them.

Real retraining on a copy of the finished study (synthetic data, one fine-tune epoch a trial)."""
from __future__ import annotations

import contextlib
import io
import shutil

import optuna
import pandas as pd
import pytest

from search.api import open_existing
from search.config import load_config
from search.decide.export import REPRODUCE_TOLERANCE
from search.decide.noise import wilson_interval
from search.decide.pick import PickSettings, pick_trial
from search.decide.reevaluate import (FILE, SUMMARY_FILE, retrain_with, summarise,
                                      trained_epochs)
from search.decide.report.data import gather
from search.decide.retrain import study_config, study_context, trial_candidate

REPEATS = 2


def _copy(finished_study, root):
    """A copy of the finished study (re-evaluation writes into the study folder), opened."""
    shutil.copytree(finished_study.folder, root / "runs" / "finished")
    config = load_config(root / "runs" / "finished" / "config.yaml").with_overrides(
        output_dir=str(root / "runs"))
    return open_existing(config)


def _cli(result, capsys, command, *args):
    from search.cli.main import main

    capsys.readouterr()
    code = main([command, "--output-dir", result.config.output_dir, "--study", "finished", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def copied(finished_study, tmp_path_factory):
    return _copy(finished_study, tmp_path_factory.mktemp("reevaluate"))


@pytest.fixture(scope="module")
def reevaluated(copied):
    """``reevaluate --all --repeats 2`` on the copy: (the front's trials, printed output)."""
    from search.cli.main import main

    front = [int(t) for t in copied.front()["trial"]]
    assert len(front) >= 2, "the finished study's front has two points to re-evaluate"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["reevaluate", "--output-dir", copied.config.output_dir, "--study",
                     "finished", "--all", "--repeats", str(REPEATS)])
    assert code == 0
    return front, out.getvalue()


def _seed(result, trial: int) -> int:
    return int(result.study.trials[trial].user_attrs["candidate"]["seed"])


def test_reevaluating_the_front_stores_one_row_per_trial_and_repeat(copied, reevaluated):
    front, printed = reevaluated
    rows = pd.read_csv(copied.folder / FILE)
    assert list(rows.columns) == ["trial", "repeat", "seed", "epochs", "accuracy",
                                  "test_accuracy", "val_samples", "seconds"]
    assert len(rows) == REPEATS * len(front)
    assert sorted(set(rows["trial"])) == sorted(front)
    for trial in front:
        mine = rows[rows["trial"] == trial].sort_values("repeat")
        assert mine["repeat"].tolist() == [1, 2]
        assert mine["seed"].tolist() == [_seed(copied, trial) + 1, _seed(copied, trial) + 2]
    assert (rows["epochs"] == 1).all()                  # the study's finetune.epochs
    assert (rows["val_samples"] == copied.val_samples).all()
    assert rows["accuracy"].between(0, 1).all() and rows["test_accuracy"].between(0, 1).all()
    assert (copied.folder / SUMMARY_FILE).is_file()
    # progress, one line per repeat, then the table
    for trial in front:
        assert f"trial {trial} repeat 2/2 (seed {_seed(copied, trial) + 2}, epochs 1): val acc" \
            in printed
    assert "searched acc" in printed and "re-evaluated [95% CI]" in printed


def test_the_summary_is_the_mean_with_its_interval_over_the_validation_samples(copied,
                                                                               reevaluated):
    rows = copied.reevaluation()
    summary = copied.reevaluation(summary=True)
    searched = copied.trials().set_index("trial")["accuracy"]
    assert len(summary) == len(reevaluated[0])
    for _, line in summary.iterrows():
        mine = rows[rows["trial"] == line["trial"]]["accuracy"]
        assert line["repeats"] == REPEATS
        assert line["accuracy"] == pytest.approx(mine.mean())
        assert (line["accuracy_min"], line["accuracy_max"]) == (mine.min(), mine.max())
        low, high = wilson_interval(mine.mean(), copied.val_samples)   # n: the images, once
        assert (line["accuracy_lower95"], line["accuracy_upper95"]) == pytest.approx((low, high))
        assert line["searched_accuracy"] == pytest.approx(searched[line["trial"]])
        assert line["optimistic"] == (line["searched_accuracy"] - line["accuracy"]
                                      > (high - low) / 2)


def test_a_second_run_keeps_the_stored_repeats_and_trains_only_new_ones(copied, reevaluated):
    """An interrupted run resumes (it trained every repeat again); more repeats add to them."""
    before = copied.reevaluation()
    lines: list[str] = []
    summary = copied.reevaluate(reevaluated[0], repeats=REPEATS, log=lines.append)
    after = copied.reevaluation()
    columns = ["trial", "repeat", "seed", "epochs", "accuracy", "test_accuracy", "seconds"]
    pd.testing.assert_frame_equal(after[columns], before[columns])   # kept as they were
    assert sorted(summary["trial"]) == sorted(reevaluated[0])
    assert (summary["repeats"] == REPEATS).all()
    kept = [line for line in lines if line.endswith("stored already, kept")]
    assert len(kept) == sum(line.startswith("trial ") for line in lines) \
        == REPEATS * len(reevaluated[0])
    trial = reevaluated[0][0]
    lines.clear()
    copied.reevaluate([trial], repeats=REPEATS + 1, log=lines.append)
    trained = [line for line in lines if line.startswith("trial ") and "val acc" in line]
    assert trained and all(f"repeat {REPEATS + 1}/{REPEATS + 1}" in line for line in trained)
    assert len(copied.reevaluation()) == len(before) + 1


def test_the_search_seed_and_epochs_reproduce_the_searched_accuracy(copied):
    """The re-evaluation's retrain path is the trial's: same seed and epochs, same accuracy."""
    config = study_config(copied.config)
    context = study_context(copied, config, lambda line: None, {})
    for number in (1, 2):
        trial = copied.study.trials[number]
        candidate = trial_candidate(copied, trial, config, context, lambda line: None)
        epochs = trained_epochs(candidate, context)
        again = retrain_with(candidate, context, seed=candidate.seed, epochs=epochs)
        assert abs(again.measured["accuracy"] - trial.user_attrs["accuracy"]) \
            <= REPRODUCE_TOLERANCE
    longer = retrain_with(candidate, context, seed=candidate.seed, epochs=2 * epochs)
    assert longer.run.train_flops == pytest.approx(2 * again.run.train_flops)
    assert context.finetune.epochs == epochs              # the settings were copied, not changed


def test_pick_reevaluated_reads_the_reevaluated_figures(finished_study, tmp_path, capsys):
    result = _copy(finished_study, tmp_path)
    plain = result.pick()
    done = result.trials()
    done = done[done["state"] == "COMPLETE"]
    left_out = int(done.loc[done["trial"] != plain.trial, "trial"].max())
    rows = pd.DataFrame([{"trial": int(t), "repeat": 1, "seed": 1, "epochs": 1,
                          "accuracy": 0.1 if t == plain.trial else float(a),
                          "test_accuracy": 0.1, "val_samples": result.val_samples}
                         for t, a in zip(done["trial"], done["accuracy"]) if t != left_out])
    rows.to_csv(result.folder / FILE, index=False)

    found = result.pick(reevaluated=True)
    assert found and found.trial != plain.trial
    assert found.row["accuracy"] == pytest.approx(
        float(done.loc[done["trial"] == found.trial, "accuracy"].iloc[0]))
    assert "accuracy re-evaluated" in found.reason
    assert "1 completed trial(s) without a re-evaluation left out" in found.reason
    code, out, _ = _cli(result, capsys, "pick", "--reevaluated")
    assert code == 0 and f"picked trial {found.trial}:" in out
    report = gather(result, picks=[PickSettings(reevaluated=True)])    # the report's picks too
    assert [p.trial for p in report.picks] == [found.trial]
    code, out, _ = _cli(result, capsys, "pick")
    assert code == 0 and f"picked trial {plain.trial}:" in out


def test_pick_reevaluated_bounds_the_interval_of_the_reevaluated_mean():
    frame = pd.DataFrame({"trial": [0, 1, 2], "state": "COMPLETE",
                          "accuracy": [0.99, 0.97, 0.96], "flops": [100.0, 50.0, 30.0]})
    rows = pd.DataFrame({"trial": [0, 0, 1, 1], "seed": [1, 2, 1, 2], "epochs": 1,
                         "accuracy": [0.99, 0.99, 0.90, 0.92], "val_samples": 200})
    summary = summarise(rows, frame.set_index("trial")["accuracy"])
    low = float(wilson_interval(0.91, 200)[0])                    # 0.8631: trial 1's mean
    args = (["accuracy", "flops"], ["maximize", "minimize"], 200, summary)
    found = pick_trial(frame, PickSettings(min_accuracy=0.86, accuracy_bound="lower",
                                           reevaluated=True), *args)
    assert found.trial == 1 and f"accuracy 95% lower bound {low:.4f} >= 0.8600" in found.reason
    assert "1 completed trial(s) without a re-evaluation left out" in found.reason   # trial 2
    assert pick_trial(frame, PickSettings(min_accuracy=0.87, accuracy_bound="lower",
                                          reevaluated=True), *args).trial == 0
    assert pick_trial(frame, PickSettings(min_accuracy=0.87, accuracy_bound="lower"),
                      *args).trial == 2                           # the search's own figures


def test_pick_reevaluated_without_a_reevaluation_says_how_to_make_one(study_cli):
    code, _, err = study_cli("pick", "--reevaluated")
    assert code == 2
    assert "--reevaluated reads the study's re-evaluation (reevaluation.csv" in err
    assert "run `sparsity-search reevaluate`" in err


@pytest.fixture(scope="module")
def failed_trial(copied, reevaluated):
    copied.study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL))
    return len(copied.study.trials) - 1


@pytest.mark.parametrize("args, message", [
    (["--repeats", "0"], "repeats (--repeats) must be an integer >= 1, got 0"),
    (["--epochs", "-1"], "epochs (--epochs) must be an integer >= 1 (fine-tune epochs), got -1"),
    (["--trial", "FAILED"], "--trial must name a COMPLETE trial (only those can be "
                            "re-evaluated), got FAILED (FAIL)"),
    (["--trial", "99"], "--trial must be one of the study's trial numbers 0..FAILED, got 99"),
    (["--trial", "1", "--all"], "reevaluate takes --trial numbers or --floor / --all, not both"),
], ids=["repeats", "epochs", "not-complete", "unknown", "trial-and-all"])
def test_bad_input_one_line_nothing_changed(args, message, copied, failed_trial, capsys):
    files = {p.name: p.read_bytes() for p in copied.folder.iterdir() if p.is_file()
             and p.name != "study.db"}
    trials = len(copied.study.trials)
    args = [a.replace("FAILED", str(failed_trial)) for a in args]
    code, out, err = _cli(copied, capsys, "reevaluate", *args)
    assert code == 2
    assert err.strip() == "error: " + message.replace("FAILED", str(failed_trial))
    assert "repeat" not in out
    assert {p.name: p.read_bytes() for p in copied.folder.iterdir() if p.is_file()
            and p.name != "study.db"} == files
    assert len(copied.study.trials) == trials


def test_a_study_with_no_completed_trial_says_so(tmp_path):
    """It said "no front point at or above the floor (--all: every front point)", and --all
    said the same: the study had no completed trial at all."""
    from search.config import config_from_dict
    from search.decide.reevaluate import reevaluate_trials
    from search.study_result import StudyResult

    config = config_from_dict({"study": "empty", "output_dir": str(tmp_path)})
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    study.enqueue_trial({})                        # waiting, never run
    lines: list[str] = []
    for floor in (0.1, None):
        summary = reevaluate_trials(StudyResult(config, study), floor=floor, log=lines.append)
        assert summary.empty
    assert lines == ["the study has no completed trials yet: nothing to re-evaluate"] * 2
