"""Smoke test: the scale benchmark measures the built-in CNN in a subprocess."""
import pandas as pd

from conftest import load_benchmark


def test_scale_tiny(tmp_path):
    out = tmp_path / "scale.csv"
    assert load_benchmark("scale.py").main(["--tiny", "--out", str(out)]) == 0
    row = pd.read_csv(out).iloc[0]
    assert row["model"] == "cnn" and row["layers"] == 5
    assert row["search_overhead_ms_per_trial"] > 0 and row["peak_rss_MB"] > 0
