"""The examples run as written (at a tiny budget: SPARSITY_SEARCH_SMOKE=1 or --smoke)."""
from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.disk_formats import write_cifar10

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def smoke(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SPARSITY_SEARCH_SMOKE", "1")
    return tmp_path


@pytest.mark.slow
@pytest.mark.parametrize("script,study", [("digits_default.py", "digits"),
                                          ("custom_model_api.py", "my_model")])
def test_python_examples_run(smoke, capsys, script, study):
    runpy.run_path(str(EXAMPLES / script), run_name="__main__")
    trials = pd.read_csv(smoke / "runs" / study / "trials.csv")
    assert len(trials) == 2 and set(trials["state"]) == {"COMPLETE"}
    assert "accuracy" in capsys.readouterr().out


@pytest.mark.slow
def test_cifar10_example_runs_on_files_in_the_real_format(smoke, monkeypatch):
    write_cifar10(smoke / "data", per_batch=8, n_test=16)
    monkeypatch.setattr(sys, "argv", ["torchvision_cifar10.py", "--root", "data", "--smoke",
                                      "--device", "cpu"])
    runpy.run_path(str(EXAMPLES / "torchvision_cifar10.py"), run_name="__main__")
    trials = pd.read_csv(smoke / "runs" / "resnet18_cifar10" / "trials.csv")
    assert len(trials) == 2 and "sparsity.layer4.1.conv2" in trials.columns


def test_cifar10_yaml_example_is_a_valid_config():
    from search.config import load_config

    config = load_config(EXAMPLES / "torchvision_cifar10.yaml")
    assert config.model.name == "torchvision:resnet18" and not config.data.download


@pytest.mark.parametrize("name, model", [("pydoc_text.yaml", "tiny_gpt"),
                                         ("vit_digits.yaml", "vit")])
def test_transformer_yaml_examples_are_valid_configs_with_valid_groups(name, model):
    from search.config import load_config
    from search.run.context import model_and_data
    from spaces.space import SearchSpace

    config = load_config(EXAMPLES / name)
    assert config.model.name == model
    layers = list(model_and_data(config).basis.layers)
    space = SearchSpace(layers, config.space)
    assert any(space.group_of(layer.name) for layer in layers)
