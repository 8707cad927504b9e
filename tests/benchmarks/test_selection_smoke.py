"""Smoke test: the selection benchmark re-evaluates a tiny study's front and compares four rules."""
import pandas as pd

from conftest import load_benchmark


def test_selection_tiny(tmp_path, capsys):
    bench = load_benchmark("selection.py")
    assert bench.main(["--tiny", "--out", str(tmp_path / "selection.csv")]) == 0
    table = pd.read_csv(tmp_path / "selection.csv")
    assert list(table["rule"]) == ["search", "lower", "reevaluated", "reeval+lower"]
    # the re-evaluation was stored in the study folder, apart from the search's figures
    stored = pd.read_csv(tmp_path / "tiny" / "reevaluation.csv")
    assert len(stored) >= 2 and set(stored["repeat"]) == {1, 2}
    chosen = table.dropna(subset=["trial"])
    assert (chosen["compression"] >= 1).all()
    assert "Median over 1 studies" in capsys.readouterr().out
