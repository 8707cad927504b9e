"""Honest selection: accuracy intervals (Wilson), noise notes on the front, pick on the interval's
lower bound, and the display floor of the printed front."""
from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy.stats import binomtest

from conftest import tiny_config_dict
from search.decide.display import FrontDisplay
from search.decide.front_formats import render_front
from search.decide.noise import interval_samples, noise_notes, wilson_interval
from search.decide.pick import PickSettings, pick_trial
from search.decide.tables import front_table
from search.schema import ConfigError


@pytest.mark.parametrize("k, n", [(0, 10), (3, 10), (260, 270), (270, 270), (50, 100)])
def test_wilson_interval_matches_scipy(k, n):
    expected = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    low, high = wilson_interval(k / n, n)
    assert low == pytest.approx(expected.low, abs=1e-12)
    assert high == pytest.approx(expected.high, abs=1e-12)


def test_wilson_interval_is_vectorised_and_refuses_no_samples():
    low, high = wilson_interval(pd.Series([0.5, 0.9]), 100)
    assert low.shape == (2,) and (low < [0.5, 0.9]).all() and (high > [0.5, 0.9]).all()
    with pytest.raises(ValueError, match="n must be >= 1, got 0"):
        wilson_interval(0.5, 0)


def test_intervals_only_for_a_recorded_proportion():
    assert interval_samples(270, "accuracy") == 270 and interval_samples(270, "top5") == 270
    assert interval_samples(270, "f1_macro") is None      # not a fraction of the samples
    assert interval_samples(None, "accuracy") is None      # a study from before it was recorded


def front_of_five() -> pd.DataFrame:
    """(trial, accuracy, flops, energy): a near-chance point, then a front read at n = 1000."""
    rows = [(7, 0.19, 1.0, 1.0), (3, 0.95, 2.0, 2.0), (5, 0.96, 3.0, 3.0), (9, 0.99, 4.0, 4.0),
            (4, 0.955, 5.0, 0.5)]
    frame = pd.DataFrame(rows, columns=["trial", "accuracy", "flops", "energy_uj"])
    frame["criterion"] = "magnitude"
    return frame


def test_noise_notes_hand_computed():
    # n = 1000: 0.95 -> [0.935, 0.962], 0.96 -> [0.946, 0.970], 0.99 -> [0.982, 0.995].
    notes = noise_notes(front_of_five(), "flops", 1000)
    assert list(notes) == [
        "",                         # nothing cheaper
        "",                         # 0.95 vs 0.19: far apart
        "within noise of #3",       # 0.96 vs 0.95: the intervals overlap
        "",                         # 0.99 vs 0.96: they do not
        "within noise of #3",       # the most accurate cheaper point not above it (#5 is above)
    ]
    assert list(noise_notes(front_of_five(), "flops", 100_000)) == [""] * 5   # a larger split


def test_front_table_shows_the_interval_after_accuracy_and_the_note_last():
    table = front_table(front_of_five(), ["accuracy", "flops"], 1000, "flops")
    columns = list(table.columns)
    assert columns[:3] == ["trial", "val_acc", "acc 95% CI"] and columns[-1] == "noise"
    assert table["acc 95% CI"].iloc[1] == "0.935-0.962"
    assert "acc 95% CI" not in front_table(front_of_five(), ["accuracy", "flops"]).columns


def test_the_printed_front_starts_at_the_floor_and_says_so():
    display = FrontDisplay(("accuracy", "flops"), 1000, "flops", dense_accuracy=0.98)
    text = render_front(front_of_five(), "table", display)
    title, blank, header, *rows = text.splitlines()
    assert title == ("4 of 5 front points shown: accuracy >= 0.8800 (dense 0.9800 - 0.10); "
                     "--all shows every point")
    assert blank == "" and "acc 95% CI" in header and len(rows) == 4
    assert not any(row.split()[0] == "7" for row in rows)        # the near-chance point
    every = pd.read_csv(io.StringIO(render_front(front_of_five(), "csv", display)))
    assert list(every["trial"]) == [7, 3, 5, 9, 4]                # the data keeps every point
    for floor in (None, 1.0):
        shown = render_front(front_of_five(), "table", FrontDisplay(
            ("accuracy",), dense_accuracy=0.98, floor=floor)).splitlines()
        assert shown[0].split()[0] == "trial" and len(shown) == 6


def test_a_noise_note_naming_a_point_below_the_floor_says_so():
    front = front_of_five()
    front.loc[0, "accuracy"] = 0.945      # #7, the cheapest, now within noise of #3 above it...
    display = FrontDisplay(("accuracy", "flops"), 1000, "flops", dense_accuracy=0.99, floor=0.04)
    rows = render_front(front, "table", display).splitlines()[3:]   # ...and below the floor
    by_trial = {row.split()[0]: row for row in rows}
    assert "7" not in by_trial and by_trial["3"].endswith("within noise of #7 (below the floor)")
    assert by_trial["5"].endswith("within noise of #3")               # #3 is shown


def trials(accuracies: list[float]) -> pd.DataFrame:
    frame = pd.DataFrame({"trial": range(len(accuracies)), "accuracy": accuracies,
                          "flops": [100.0 * (i + 1) for i in range(len(accuracies))]})
    frame["state"] = "COMPLETE"
    return frame


def test_pick_can_demand_the_lower_bound_of_the_interval():
    frame = trials([0.952, 0.97, 0.995])
    point = pick_trial(frame, PickSettings(min_accuracy=0.95), ["accuracy", "flops"],
                       ["maximize", "minimize"], val_samples=200)
    assert point.trial == 0                                     # the cheapest at >= 0.95
    lower = pick_trial(frame, PickSettings(min_accuracy=0.95, accuracy_bound="lower"),
                       ["accuracy", "flops"], ["maximize", "minimize"], val_samples=200)
    # lower ends at n = 200: 0.9143, 0.9360, 0.9722
    assert lower.trial == 2
    assert "accuracy 95% lower bound 0.9722 >= 0.9500" in lower.reason
    none = pick_trial(frame, PickSettings(min_accuracy=0.99, accuracy_bound="lower"),
                      ["accuracy", "flops"], ["maximize", "minimize"], val_samples=200)
    assert not none and "--min-accuracy 0.99 --accuracy-bound lower" in none.reason
    assert "accuracy 95% lower bound 0.9722 >= 0.9900" in none.nearest["misses"].iloc[0]


def test_lower_bound_needs_the_number_of_samples_and_an_accuracy_floor():
    with pytest.raises(ConfigError, match="needs the number of validation samples"):
        pick_trial(trials([0.9]), PickSettings(min_accuracy=0.5, accuracy_bound="lower"),
                   ["accuracy", "flops"], ["maximize", "minimize"], val_samples=None)
    with pytest.raises(ConfigError, match="accuracy_bound 'lower' applies to min_accuracy"):
        PickSettings(max_flops=1e6, accuracy_bound="lower")
    with pytest.raises(ConfigError, match=r"accuracy_bound must be one of \['point', 'lower'\], "
                                          r"got 'upper'"):
        PickSettings(min_accuracy=0.5, accuracy_bound="upper")


def test_a_study_records_its_validation_samples(finished_study):
    assert finished_study.study.user_attrs["val_samples"] == len(finished_study.context.data.val)
    assert finished_study.val_samples == 60                     # 15% of 400 synthetic samples


def test_pick_cli_on_the_lower_bound(study_cli, finished_study):
    done = finished_study.trials()
    done = done[done["state"] == "COMPLETE"]
    low, _ = wilson_interval(done["accuracy"], finished_study.val_samples)
    limit = f"{float(np.max(low)) + 0.001:.4f}"       # above every lower end, below the best point
    assert done["accuracy"].max() > float(limit)
    code, out, _ = study_cli("pick", "--min-accuracy", limit)
    assert code == 0
    code, out, _ = study_cli("pick", "--min-accuracy", limit, "--accuracy-bound", "lower")
    assert code == 1 and f"--min-accuracy {limit} --accuracy-bound lower" in out
    code, _, err = study_cli("pick", "--accuracy-bound", "lower")
    assert code == 2 and "applies to min_accuracy" in err


def test_the_end_of_run_table_has_the_floor_and_the_intervals(tmp_path, capsys):
    from search.cli.main import main

    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(tiny_config_dict(tmp_path, n_trials=3)))
    assert main(["run", str(path)]) == 0
    out = capsys.readouterr().out
    assert "front points shown: accuracy >= " in out and "--all shows every point" in out
    assert "acc 95% CI" in out
    assert main(["run", str(path), "--all"]) == 0                # resumed: nothing left to run
    out = capsys.readouterr().out
    assert "front points shown" not in out and "acc 95% CI" in out
