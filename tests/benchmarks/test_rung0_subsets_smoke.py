"""Smoke test: the rung-0 subsets benchmark runs a study and replays rung 0 at a tiny size."""
import pandas as pd

from conftest import load_benchmark


def test_rung0_subsets_tiny(tmp_path, capsys):
    bench = load_benchmark("rung0_subsets.py")
    assert bench.main(["--tiny", "--out", str(tmp_path)]) == 0
    table = pd.read_csv(tmp_path / "rung0_subsets_cnn.csv")
    assert list(table["samples"])[0] == 20 and len(table) == 2     # the subset, then the split
    assert table["samples"].iloc[1] > 20 and (table["trials"] >= 3).all()
    assert (table["rung0_ms_median"] > 0).all()
    assert table[["spearman_rung0_accuracy", "spearman_minus_kl"]].abs().le(1).all().all()
    assert "load average" in capsys.readouterr().out
