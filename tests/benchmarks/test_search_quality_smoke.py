"""Smoke test: the search-quality benchmark runs end to end at a tiny size and reports numbers."""
import numpy as np
import pandas as pd
import pytest

from conftest import load_benchmark


def test_search_quality_tiny(tmp_path, capsys):
    bench = load_benchmark("search_quality.py")
    assert bench.main(["--tiny", "--out", str(tmp_path), "--methods", "uniform_sweep",
                       "default", "gp"]) == 0
    table = pd.read_csv(tmp_path / "search_quality_cnn.csv")
    # the default runs first; the others get the fine-tune epochs it spent, and keep to them
    assert list(table["method"]) == ["default", "uniform_sweep", "gp"]
    by = table.set_index("method")
    assert by.loc["default", "trials"] == 6
    assert (by["finetune_epochs"] <= by.loc["default", "finetune_epochs"]).all()
    assert (table["hypervolume"] >= 0).all()
    # IGD+ against the union front of the seed: some method is on it everywhere (0) or near it
    assert (table["igd_plus"] >= 0).all() and table["igd_plus"].min() < 0.05
    out = capsys.readouterr().out
    assert "Median over 1 seed" in out and "every other method in median hypervolume" in out
    assert (tmp_path / "search_quality_cnn.png").stat().st_size > 1000
    # the table can be printed again from the CSVs without running anything
    assert bench.main(["--summarize", "--results", str(tmp_path), "--out", str(tmp_path)]) == 0
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


def test_igd_plus_counts_only_the_objectives_where_a_point_is_worse():
    bench = load_benchmark("search_quality.py")
    reference = np.array([[0.0, 1.0], [1.0, 0.0]])
    assert bench.igd_plus(reference, reference) == 0.0
    # (0.5, 0.5) is worse than (0, 1) only in the first objective (by 0.5), than (1, 0) in the
    # second (0.5): IGD+ 0.5, where plain IGD would say sqrt(0.5)
    assert bench.igd_plus(np.array([[0.5, 0.5]]), reference) == pytest.approx(0.5)
    # a point dominating the whole reference front is at distance 0
    assert bench.igd_plus(np.array([[-1.0, -1.0]]), reference) == 0.0
    assert bench.igd_plus(np.zeros((0, 2)), reference) == float("inf")


def test_epochs_from_gives_a_changed_default_an_earlier_tables_epochs(tmp_path):
    bench = load_benchmark("search_quality.py")
    earlier = tmp_path / "earlier.csv"
    pd.DataFrame({"seed": [0], "method": ["default"], "finetune_epochs": [5]}).to_csv(earlier)
    assert bench.main(["--tiny", "--out", str(tmp_path), "--epochs-from", str(earlier),
                       "--methods", "default+refine:0.5@2"]) == 0
    row = pd.read_csv(tmp_path / "search_quality_cnn.csv").iloc[0]
    assert row["method"] == "default+refine:0.5@2"
    assert 0 < row["finetune_epochs"] <= 5      # held to the earlier default's epochs
    assert bench.method_overrides("default+refine:none", 60) == {
        "search": {"refine": {"within": []}}}
    assert bench.method_overrides("default+refine:0.01,0.02@4", 60) == {
        "search": {"refine": {"within": [0.01, 0.02], "every": 4}}}


def test_a_sweep_runs_only_what_it_enqueues_at_the_spaces_bit_widths():
    """An even number of affordable trials left one to the sampler inside a hand-made sweep."""
    bench = load_benchmark("search_quality.py")
    args = bench.argparse.Namespace(epochs=4, trials=60)
    for budget in (136, 140):       # 34 and 35 affordable trials
        change = bench.equal_epochs_overrides("erk_sweep", budget, args)
        search = change["search"]
        assert search["n_trials"] == 1 + 2 * len(search["baseline_sparsities"]) <= budget // 4
    assert bench.sweep_bits([2, 4, 8, 16, 32]) == (8, 32) and bench.sweep_bits([4, 8]) == (8,)
    assert bench.sweep_bits([2, 4]) == (4,)
    one = bench.equal_epochs_overrides("uniform_sweep", 40, args, (8,))["search"]
    assert one["baseline_bits"] == [8] and one["n_trials"] == 1 + len(one["baseline_sparsities"])


def test_the_verdict_skips_what_no_method_measured():
    bench = load_benchmark("search_quality.py")
    summary = pd.DataFrame({"hypervolume": [0.5, 0.4], "igd_plus": [0.0, float("nan")],
                            "compression_1pt": [float("nan"), float("nan")]},
                           index=["default", "uniform_sweep"])
    lines = bench.verdict(summary)
    assert lines[0].startswith("default beats every other method in median hypervolume")
    assert "IGD+" in lines[1] and lines[2] == ("default has no median compression at 1 point "
                                               "(higher) (nothing measured)")


def test_changes_to_the_default_combine_and_unknown_ones_are_refused():
    bench = load_benchmark("search_quality.py")
    assert bench.method_overrides("default+bits:8+refine:0.01@5", 60) == {
        "search": {"baseline_bits": [8], "refine": {"within": [0.01], "every": 5}}}
    assert bench.method_overrides("default+bl:uniform,erk", 60) == {
        "search": {"baselines": ["uniform", "erk"]}}
    with pytest.raises(SystemExit, match="unknown change to the default 'bogus'"):
        bench.method_overrides("default+bits:8+bogus", 60)


def test_a_users_own_task_runs_the_same_protocol(tmp_path, capsys):
    bench = load_benchmark("search_quality.py")
    task = tmp_path / "my_task.yaml"
    # a study config as a user writes it; its own study name, seed and budget are the benchmark's
    # its search section is the protocol's (a sampler of its own changed what "default" meant);
    # a space without 32 bits gives the sweeps its widest width (32 was asked for, and refused)
    task.write_text("study: mine\nseed: 99\n"
                    "data: {name: synthetic, options: {samples: 240, classes: 4}}\n"
                    "model: {name: mlp, options: {hidden: [16]}}\n"
                    "dense: {epochs: 3, lr: 0.005}\nspace: {bits: [4, 8]}\n"
                    "search: {n_trials: 500, sampler: random}\n")
    assert bench.main(["--tiny", "--config", str(task), "--accuracy-floor", "0.3",
                       "--out", str(tmp_path), "--methods", "default", "erk_sweep"]) == 0
    table = pd.read_csv(tmp_path / "search_quality_my_task.csv")
    assert list(table["method"]) == ["default", "erk_sweep"]
    assert list(table["model"]) == ["my_task"] * 2 and list(table["seed"]) == [0, 0]
    assert table.set_index("method").loc["default", "trials"] == 6
    out = capsys.readouterr().out
    assert "HV reference: accuracy 0.3" in out
    assert "the file's search.n_trials, search.sampler are left out" in out
    import yaml
    saved = yaml.safe_load((tmp_path / "my_task-s0-default" / "config.yaml").read_text())
    assert saved["search"]["sampler"] == "tpe"
    sweep = pd.read_csv(tmp_path / "my_task-s0-erk_sweep" / "trials.csv")
    assert set(sweep["origin"]) == {"dense", "erk"}          # every trial the rule's, none drawn
    assert set(sweep["bits.net.1"]) == {8}
    with pytest.raises(SystemExit):
        bench.main(["--config", str(tmp_path / "missing.yaml"), "--out", str(tmp_path)])
    assert "no such file" in capsys.readouterr().err
