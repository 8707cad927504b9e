"""Smoke test: the overhead benchmark runs at a tiny size and writes its table."""
import pandas as pd

from conftest import load_benchmark


def test_overhead_tiny(tmp_path):
    out = tmp_path / "overhead.csv"
    assert load_benchmark("overhead.py").main(["--tiny", "--out", str(out)]) == 0
    table = pd.read_csv(out)
    assert len(table) == 1 and table.loc[0, "bare_ms_per_trial"] > 0
    assert table.loc[0, "ours_ms_per_trial"] > 0
