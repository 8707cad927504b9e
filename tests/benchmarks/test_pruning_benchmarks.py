"""Smoke tests: the pruning benchmark scripts run at a tiny size and write their CSV.

The scripts are loaded and their ``main`` called in this process (no second torch import).
"""
from __future__ import annotations

import csv

import pytest
import torch

from conftest import load_benchmark

SCRIPTS = {
    "structured_speedup.py": {"dense", "25%", "50%", "75%"},
    "training_energy.py": {"dense", "during_training channel 50% (l2)"},
}


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_benchmark_runs_tiny_and_writes_csv(script, tmp_path, capsys):
    out = tmp_path / "out.csv"
    threads = torch.get_num_threads()
    try:
        assert load_benchmark(script).main(["--tiny", "--csv", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)
    assert "CSV:" in capsys.readouterr().out
    with open(out) as handle:
        rows = list(csv.DictReader(handle))
    first_column = "channels_removed" if script == "structured_speedup.py" else "method"
    assert {row[first_column] for row in rows} == SCRIPTS[script]
    if script == "structured_speedup.py":
        params = [int(row["params"]) for row in rows]
        assert params == sorted(params, reverse=True)       # more channels removed, fewer params
    else:
        pruned = rows[1]
        assert float(pruned["flops_saved"]) > 0.5 and pruned["energy_source"] in ("estimate", "rapl", "nvml")


@pytest.mark.parametrize("argv,message", [(["--seeds", "0"], "--seeds must be >= 1, got 0"),
                                          (["--ratios", "0.5", "1.0"], "--ratios must be in (0, 1)")])
def test_training_energy_refuses_bad_arguments_with_a_message(argv, message, capsys):
    with pytest.raises(SystemExit) as stop:
        load_benchmark("training_energy.py").main(argv)
    assert stop.value.code == 2 and message in capsys.readouterr().err
