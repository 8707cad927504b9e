"""Smoke test: the search-quality benchmark runs end to end at a tiny size and reports numbers."""
import pandas as pd

from conftest import load_benchmark


def test_search_quality_tiny(tmp_path, capsys):
    bench = load_benchmark("search_quality.py")
    assert bench.main(["--tiny", "--out", str(tmp_path), "--methods", "uniform_sweep",
                       "default"]) == 0
    table = pd.read_csv(tmp_path / "search_quality.csv")
    assert list(table["method"]) == ["uniform_sweep", "default"]
    assert (table["hypervolume"] >= 0).all() and (table["trials"] == 6).all()
    assert "Median over 1 seed" in capsys.readouterr().out
