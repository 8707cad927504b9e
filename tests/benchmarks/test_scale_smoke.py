"""Smoke test: the scale benchmark measures the built-in CNN in a subprocess."""
import importlib.util

import pandas as pd

from conftest import REPO_ROOT


def test_scale_tiny(tmp_path):
    spec = importlib.util.spec_from_file_location("scale", REPO_ROOT / "benchmarks" / "scale.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "scale.csv"
    assert bench.main(["--tiny", "--out", str(out)]) == 0
    row = pd.read_csv(out).iloc[0]
    assert row["model"] == "cnn" and row["layers"] == 5
    assert row["search_overhead_ms_per_trial"] > 0 and row["peak_rss_MB"] > 0
