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
    # the default search enqueues baselines: each is on the front or dominated (counted once)
    fates = table.set_index("method").loc["default", "baselines_front/searched/other"]
    front, searched, rest_of = fates.split("/")
    rest, total = rest_of.split(" of ")
    assert int(front) + int(searched) + int(rest) == int(total) > 0


def test_baseline_fates_counts_front_searched_and_other():
    bench = load_benchmark("search_quality.py")
    trials = pd.DataFrame({
        "state": ["COMPLETE"] * 4,
        "origin": ["uniform", "uniform", "global_magnitude", "sampler"],
        "accuracy": [0.9, 0.8, 0.7, 0.95],
        "flops": [50.0, 60.0, 10.0, 40.0],
        "energy_uj": [1.0, 1.0, 0.1, 0.9],
    })
    # uniform 0.9@50 dominated by the sampler's 0.95@40; uniform 0.8@60 too; the global one is
    # the cheapest, so on the front
    assert bench.baseline_fates(trials) == "1/2/0 of 3"
    trials.loc[3, "origin"] = "dense"
    assert bench.baseline_fates(trials) == "1/0/2 of 3"
