"""Smoke test: the overhead benchmark runs at a tiny size and writes its table."""
import importlib.util

import pandas as pd

from conftest import REPO_ROOT


def test_overhead_tiny(tmp_path):
    spec = importlib.util.spec_from_file_location("overhead", REPO_ROOT / "benchmarks" / "overhead.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "overhead.csv"
    assert bench.main(["--tiny", "--out", str(out)]) == 0
    table = pd.read_csv(out)
    assert len(table) == 1 and table.loc[0, "bare_ms_per_trial"] > 0
    assert table.loc[0, "ours_ms_per_trial"] > 0
