"""sensitivity: per-layer accuracy without fine-tuning, weight statistics, sparsity bounds."""
from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from search.api import run_sensitivity
from search.config import load_config
from search.schema import ConfigError
from search.run.sensitivity import load_sensitivity, max_sparsity_bounds, sensitivity_bounds


def test_bounds_stop_at_the_first_grid_point_beyond_the_tolerated_drop():
    table = pd.DataFrame({
        "layer": ["a"] * 3 + ["b"] * 3,
        "sparsity": [0.5, 0.8, 0.9] * 2,
        "drop": [0.0, 0.005, 0.03, 0.02, 0.0, 0.0],   # b: fails at the first point already
    })
    assert max_sparsity_bounds(table, 0.01) == {"a": 0.8, "b": 0.0}
    assert max_sparsity_bounds(table, 0.05) == {"a": 0.9, "b": 0.9}
    with pytest.raises(ConfigError, match="max_drop must be in \\[0, 1\\), got 2"):
        max_sparsity_bounds(table, 2)


def test_sensitivity_of_the_finished_study(finished_study, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(finished_study.folder, runs / "finished")
    config = load_config(runs / "finished" / "config.yaml").with_overrides(output_dir=str(runs))
    result = run_sensitivity(config, grid=(0.5, 0.97), log=lambda line: None)
    layers = [layer for layer in result.layers]
    assert len(result.accuracy) == 2 * len(layers) == 10
    assert result.dense_accuracy == pytest.approx(finished_study.dense_reference()["accuracy"])
    assert (result.accuracy["drop"] == result.dense_accuracy - result.accuracy["accuracy"]).all()
    # pruning 97% of the last layer alone leaves a 4-class classifier with ~15 weights: it hurts
    last = result.accuracy[result.accuracy["layer"] == layers[-1]].set_index("sparsity")
    assert last.loc[0.97, "drop"] > 0.05
    table = result.table()
    assert list(table["layer"]) == layers and {"acc@0.5", "acc@0.97"} <= set(table.columns)

    from search.cli.main import main
    code = main(["sensitivity", "--output-dir", str(runs), "--study", "finished",
                 "--grid", "0.5,0.97", "--max-drop", "0.02"])
    assert code == 0
    summary = json.loads((runs / "finished" / "sensitivity" / "summary.json").read_text())
    assert summary["max_sparsity"] == result.bounds(0.02)
    assert (runs / "finished" / "sensitivity" / "sensitivity.png").is_file()
    assert load_sensitivity(runs / "finished").accuracy.equals(result.accuracy)
    assert sensitivity_bounds(runs / "finished", 0.02) == result.bounds(0.02)
    assert main(["sensitivity", "--output-dir", str(runs), "--study", "finished",
                 "--grid", "0.5,1.5"]) == 2


def test_bounds_without_an_analysis_say_what_to_run(tmp_path):
    with pytest.raises(ConfigError, match="run `sparsity-search sensitivity` first"):
        sensitivity_bounds(tmp_path, 0.01)


def test_a_search_with_sensitivity_bounds_measures_once_and_stays_inside(tmp_path):
    """``space.sensitivity_max_drop``: the analysis is run (and stored) before the first trial,
    every drawn sparsity respects its layer's bound, and a resume reads the same bounds."""
    from search.api import run_search
    from search.config import config_from_dict
    from conftest import tiny_config_dict

    raw = tiny_config_dict(tmp_path, n_trials=6)
    raw["space"] = {"sensitivity_max_drop": 0.05}
    lines: list[str] = []
    result = run_search(config_from_dict(raw), log=lines.append)
    stored = load_sensitivity(result.folder)
    assert stored is not None and stored.criterion == "magnitude"
    bounds = stored.bounds(0.05)
    shown = [line for line in lines if line.startswith("sensitivity bounds (drop <= 0.05")]
    assert len(shown) == 1 and all(f"{name} <= {bound:g}" in shown[0]
                                   for name, bound in bounds.items())
    assert json.loads((result.folder / "sensitivity" / "summary.json").read_text())[
        "max_sparsity"] == bounds
    space_bounds = result.space.sparsity_bounds()
    for name, (_, high) in space_bounds.items():
        assert high <= bounds[name] + 1e-12
    trials = result.trials()
    for name in result.space.layer_names:
        assert (trials[f"sparsity.{name}"] <= bounds[name] + 1e-9).all()
    # Resume with two more trials: the stored analysis is read (not measured again), same space.
    raw["search"]["n_trials"] = 8
    again: list[str] = []
    resumed = run_search(config_from_dict(raw), log=again.append)
    assert not any(line.startswith("sensitivity of") for line in again)
    assert len(resumed.trials()) == 8
    # Another analysis would change the bounds the study was searched in: refused, nothing written.
    from search.api import analyse_sensitivity

    before = (result.folder / "sensitivity" / "accuracy.csv").read_bytes()
    with pytest.raises(ConfigError, match="bounds its search space by its sensitivity analysis"):
        analyse_sensitivity(result.folder / "config.yaml", grid=[0.5, 0.6], log=lambda _: None)
    assert (result.folder / "sensitivity" / "accuracy.csv").read_bytes() == before


def test_sensitivity_bounds_from_another_model_are_refused(tmp_path):
    from search.api import run_search
    from search.config import config_from_dict
    from conftest import tiny_config_dict

    raw = tiny_config_dict(tmp_path, n_trials=2)
    raw["space"] = {"sensitivity_max_drop": 0.05}
    folder = tmp_path / "runs" / "tiny" / "sensitivity"
    folder.mkdir(parents=True)
    pd.DataFrame({"layer": ["encoder.0"], "sparsity": [0.5], "accuracy": [0.9],
                  "drop": [0.0]}).to_csv(folder / "accuracy.csv", index=False)
    pd.DataFrame({"layer": ["encoder.0"], "params": [4]}).to_csv(folder / "weights.csv",
                                                                 index=False)
    (folder / "summary.json").write_text(json.dumps(
        {"dense_accuracy": 0.9, "criterion": "magnitude", "grid": [0.5], "layers": ["encoder.0"]}))
    with pytest.raises(ConfigError, match="space.sensitivity_max_drop: the sensitivity analysis"):
        run_search(config_from_dict(raw), log=lambda line: None)


def test_sensitivity_of_a_study_that_is_not_there_trains_nothing(tmp_path, capsys):
    from search.cli.main import main

    assert main(["sensitivity", "--output-dir", str(tmp_path / "runs"), "--study", "typo"]) == 2
    assert "no study 'typo'" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()           # no folder, no dense training


def test_sensitivity_never_retrains_an_existing_study_s_dense_reference(tmp_path, capsys):
    """With other dense settings than the study's, the command retrained and overwrote its
    dense.pt (the trials had been measured against it; the study then refused its own config)."""
    import yaml
    from conftest import tiny_config_dict

    from search.api import run_search
    from search.cli.main import main
    from search.config import config_from_dict

    raw = tiny_config_dict(tmp_path, n_trials=2)
    run_search(config_from_dict(raw), log=lambda line: None)
    dense = tmp_path / "runs" / "tiny" / "dense.pt"
    before = dense.read_bytes()
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({**raw, "dense": {**raw["dense"], "epochs": 4}}))
    assert main(["sensitivity", str(other)]) == 2
    assert "exists with a different setup (config.dense.epochs: stored 3, now 4)" in \
        capsys.readouterr().err
    assert dense.read_bytes() == before
    assert not (tmp_path / "runs" / "tiny" / "sensitivity").exists()
