"""The metric registry (trainers.costs.metrics.METRICS) is the one table every reader derives from:
objectives, early stopping, pick bounds and their flags, the front table and the report's labels.
A row added to the table at run time shows up in all of them without editing search/."""
from __future__ import annotations

import argparse

import pandas as pd
import pytest

import search.pareto
from search.cli.args import pick_settings
from search.cli.main import build_parser
from search.config import config_from_dict
from search.decide.pick import PickSettings, direction_of, format_pick, pick_trial
from search.decide.report.static import axis
from search.decide.tables import front_table
from search.objectives import Objectives, objective_metrics
from search.run.early_stopping_settings import EarlyStoppingSettings, unknown_before_training
from search.schema import ConfigError
from trainers.costs import metrics as registry
from trainers.costs.metrics import MAXIMIZE, MEASURED, METRICS, MINIMIZE, MetricInfo

PEAK = MetricInfo("bytes", MEASURED, "peak memory of one inference", label="peak memory, KB",
                  scale=1024.0, fmt="{:.1f}", column="peak_KB(meas)", bound="peak_kb",
                  bound_scale=1024.0)
ROBUST = MetricInfo("", MEASURED, "accuracy under noise", MAXIMIZE, label="robust accuracy",
                    limits=(0.0, 1.0))


def option_strings(command: str) -> set[str]:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {o for action in commands.choices[command]._actions for o in action.option_strings}


def expected_flag(name: str, info: MetricInfo) -> str:
    side = "min" if info.direction == MAXIMIZE else "max"
    return f"--{side}-{(info.bound or name).replace('_', '-')}"


@pytest.mark.parametrize("command", ["pick", "export", "report"])
def test_every_objective_metric_has_a_pick_flag_and_no_other_does(command):
    flags = option_strings(command)
    for name, info in METRICS.items():
        assert (expected_flag(name, info) in flags) == info.objective, name
    bound_flags = {f for f in flags if f.startswith(("--max-", "--min-"))}
    assert bound_flags == {expected_flag(n, i) for n, i in METRICS.items() if i.objective}
    assert {"--max-flops", "--min-accuracy", "--max-energy-uj", "--max-size-kb",
            "--max-latency-ms", "--max-bops", "--max-params-nonzero"} <= flags
    assert not {"--min-test-accuracy", "--max-test-accuracy", "--max-size-bytes"} & flags


def test_test_accuracy_is_never_an_objective_or_a_bound():
    assert "test_accuracy" not in objective_metrics()
    with pytest.raises(TypeError, match="unknown bound.*min_test_accuracy"):
        PickSettings(min_test_accuracy=0.9)
    with pytest.raises(ConfigError, match="metric must be one of"):
        Objectives((("test_accuracy", MAXIMIZE),))


def test_early_stopping_reads_known_before_training_from_the_table():
    known = {n for n, i in METRICS.items() if i.known_before_training}
    assert known == {"flops", "flops_dense", "bops", "params_nonzero", "size_bytes", "energy_uj"}
    for name in objective_metrics():
        if name != "accuracy":
            assert (unknown_before_training(["accuracy", name]) == []) == (name in known), name


def test_directions_live_in_the_table():
    assert search.pareto.MAXIMIZE is MAXIMIZE and search.pareto.MINIMIZE is MINIMIZE
    for name, info in METRICS.items():
        assert direction_of(name, [], []) == info.direction
    assert direction_of("flops", ["flops"], [MAXIMIZE]) == MAXIMIZE     # the study's word wins


def test_front_table_keeps_its_columns_and_formats():
    front = pd.DataFrame([{
        "trial": 24, "accuracy": 0.97777, "test_accuracy": 0.95111, "flops": 78_123.0,
        "energy_uj": 0.2301, "size_bytes": 14_643.0, "latency_ms": 0.7891, "bops": 1.2e6,
        "train_energy_j": 10.744, "energy_source": "estimate", "criterion": "magnitude",
        "sparsity.conv1": 0.78, "bits.conv1": 8}])
    table = front_table(front, ["accuracy", "flops", "bops"])
    assert list(table.columns) == ["trial", "val_acc", "test_acc", "MFLOPs", "energy_uJ(est)",
                                   "size_KB", "latency_ms(meas)", "train_J(est)",
                                   "bops(counted)", "sparsity/layer", "bits/layer", "criterion"]
    assert table.iloc[0].tolist()[1:9] == ["0.9778", "0.9511", "0.078", "0.230", "14.3", "0.789",
                                           "10.74", "1.2e+06"]


def frame_with_peak() -> pd.DataFrame:
    rows = [(0, 0.98, 1.0e6, 3.0, 40_000, 9_000.0), (1, 0.97, 5.0e5, 1.5, 12_000, 3_000.0),
            (2, 0.95, 2.0e5, 0.6, 6_000, 1_000.0)]
    frame = pd.DataFrame(rows, columns=["trial", "accuracy", "flops", "energy_uj", "size_bytes",
                                        "peak_memory_bytes"])
    frame["state"] = "COMPLETE"
    return frame


def test_a_metric_added_to_the_table_reaches_every_reader(monkeypatch):
    monkeypatch.setitem(METRICS, "peak_memory_bytes", PEAK)
    monkeypatch.setitem(METRICS, "robust_accuracy", ROBUST)
    # objectives, config constraints, early stopping
    assert {"peak_memory_bytes", "robust_accuracy"} <= set(objective_metrics())
    objectives = Objectives((("accuracy", MAXIMIZE), ("peak_memory_bytes", MINIMIZE)))
    assert not EarlyStoppingSettings().active(objectives.metrics)
    config = config_from_dict({"search": {"constraints": {"max_peak_memory_bytes": 4096}}})
    assert config.search.constraints == {"max_peak_memory_bytes": 4096}
    monkeypatch.setitem(METRICS, "peak_memory_bytes", MetricInfo(
        **{**PEAK.__dict__, "known_before_training": True}))
    assert EarlyStoppingSettings().active(objectives.metrics)
    # pick: flags (in command-line order), keywords, checks, constraints, the chosen trial
    assert {"--max-peak-kb", "--min-robust-accuracy"} <= option_strings("pick")
    args = build_parser().parse_args(["pick", "--max-peak-kb", "2.5", "--min-accuracy", "0.9"])
    settings = pick_settings(args)
    assert settings == PickSettings(max_peak_kb=2.5, min_accuracy=0.9)
    assert settings.max_peak_kb == 2.5 and settings.min_robust_accuracy is None
    assert [(c.metric, c.bound, c.limit, c.label) for c in settings.constraints()] == [
        ("peak_memory_bytes", "max", 2560.0, "--max-peak-kb 2.5"),
        ("accuracy", "min", 0.9, "--min-accuracy 0.9")]
    with pytest.raises(ConfigError, match="max_peak_kb must be > 0, got -1"):
        PickSettings(max_peak_kb=-1)
    with pytest.raises(ConfigError, match=r"min_robust_accuracy must be in \[0, 1\], got 2"):
        PickSettings(min_robust_accuracy=2)
    found = pick_trial(frame_with_peak(), settings, ["accuracy", "flops"], [MAXIMIZE, MINIMIZE])
    assert found.trial == 2        # trials 0 and 1 need 8.8 and 2.9 KB
    assert "peak_kb 0.9766 <= 2.5000; accuracy 0.9500 >= 0.9000" in found.reason
    none = pick_trial(frame_with_peak(), PickSettings(max_peak_kb=0.5), ["accuracy", "flops"],
                      [MAXIMIZE, MINIMIZE])
    assert "no completed trial meets --max-peak-kb 0.5" in none.reason
    assert "peak_memory_bytes" in none.nearest and "peak_kb 0.9766 <= 0.5000" in format_pick(none)
    # tables and report
    table = front_table(frame_with_peak())
    assert table["peak_KB(meas)"].tolist() == ["8.8", "2.9", "1.0"]
    assert "peak_KB(meas)=1.0" in format_pick(found)
    assert axis("peak_memory_bytes") == ("peak memory, KB", 1024.0)
    assert direction_of("robust_accuracy", [], []) == MAXIMIZE
    assert registry.known_before_training()[-1] == "peak_memory_bytes"
