"""Smoke test: the screening benchmark runs both searches end to end at a tiny size."""
import pandas as pd

from conftest import load_benchmark


def test_screening_tiny(tmp_path, capsys):
    bench = load_benchmark("screening.py")
    assert bench.main(["--tiny", "--out", str(tmp_path), "--rung0-samples", "30"]) == 0
    table = pd.read_csv(tmp_path / "screening-cnn.csv")
    row = table.iloc[0]
    # The screening run gets the epochs the 'before' run spent, as its budget, and keeps to it.
    assert 0 < row["epochs_screening"] <= row["epochs_before"]
    assert row["trials_before"] == 8 and row["candidates"] >= 1
    assert 0 <= row["hv_before"] <= 1 and 0 <= row["hv_screening"] <= 1
    out = capsys.readouterr().out
    assert "load average" in out and "a screened-out candidate costs" in out
