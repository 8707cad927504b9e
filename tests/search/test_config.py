import subprocess

import pytest

from conftest import REPO_ROOT, cli_command, cli_env
from search.config import ExperimentConfig, config_from_dict, dump_config, load_config
from search.schema import ConfigError


def test_defaults_round_trip_through_yaml(tmp_path):
    config = load_config(None)
    path = tmp_path / "study.yaml"
    path.write_text(dump_config(config))
    assert load_config(path) == config


def test_numbers_written_with_an_exponent_are_numbers(tmp_path):
    """YAML 1.2 floats: PyYAML alone (YAML 1.1) reads 2.0e5 and 1e-3 as strings."""
    path = tmp_path / "study.yaml"
    path.write_text("finetune: {lr: 1e-3}\ndense: {lr: 5.0E-3}\n"
                    "search: {constraints: {max_flops: 2.0e5, max_energy_uj: 1.5e+1}}\n")
    config = load_config(path)
    assert config.finetune.lr == 0.001 and config.dense.lr == 0.005
    assert config.search.constraints == {"max_flops": 200000.0, "max_energy_uj": 15.0}
    path.write_text("study: 1e5x\n")                  # not a number: stays a string
    assert load_config(path).study == "1e5x"


def test_a_section_given_in_part_keeps_the_other_defaults_of_the_reference():
    """``dense: {epochs: 20}`` kept the class's lr 1e-3 and no weight decay, not the dense
    defaults the configuration reference shows (lr 2e-3, weight decay 1e-4)."""
    import dataclasses

    from search.config import ExperimentConfig

    defaults = ExperimentConfig()
    assert config_from_dict({"dense": {"epochs": 20}}).dense == dataclasses.replace(
        defaults.dense, epochs=20)
    assert config_from_dict({"finetune": {"lr": 0.002}}).finetune == dataclasses.replace(
        defaults.finetune, lr=0.002)
    assert config_from_dict({"dense": {"weight_decay": 0.0}}).dense.weight_decay == 0.0


def test_custom_values_round_trip(tmp_path):
    config = config_from_dict({"search": {"objectives": {"accuracy": "max", "size_bytes": "min"},
                                          "sampler": "tpe"},
                               "space": {"bits": [4, 8], "sparsity": {"high": 0.9}}})
    assert config.search.objectives.metrics == ["accuracy", "size_bytes"]
    assert config.space.bits == (4, 8) and config.space.sparsity.high == 0.9
    assert config_from_dict(config.to_dict()) == config


@pytest.mark.parametrize("data, message", [
    ({"serch": {}}, "unknown key 'serch' (did you mean 'search'?)"),
    ({"search": {"n_trails": 3}}, "unknown key 'search.n_trails' (did you mean 'n_trials'?)"),
    ({"search": {"n_trials": "many"}}, "field 'search.n_trials' must be an integer, got str 'many'"),
    ({"space": {"sparsity": {"high": 1.5}}}, "space.sparsity.high must be in [0, 1), got 1.5"),
    ({"space": {"criteria": ["magnitude", "psychic"]}},
     "space.criteria: criterion must be one of"),
    ({"model": {"name": "transformer9000"}}, "model.name must be one of"),
    ({"search": {"sampler": "cmaes2"}}, "search.sampler must be one of ['nsga2', 'tpe', 'random', 'gp', 'evo']"),
    ({"search": {"objectives": {"accuracy": "up"}}},
     "search.objectives.accuracy: direction must be 'max' or 'min', got 'up'"),
    ({"search": {"objectives": {"test_accuracy": "max"}}}, "metric must be one of"),
    ({"space": {"sensitivity_max_drop": "lots"}},
     "field 'space.sensitivity_max_drop' must be a number, got str 'lots'"),
    ({"space": {"parametrization": "global"}}, "space.parametrization must be one of"),
    ({"space": {"max_sparsity": {"conv1": 1.0}}}, "space.max_sparsity.conv1 must be in [0, 1)"),
])
def test_bad_values_name_field_rule_and_value(data, message):
    with pytest.raises(ConfigError) as info:
        config_from_dict(data)
    assert message in str(info.value)


@pytest.mark.parametrize("text, message", [
    ("search:\n  n_trials: 3\n  n_trails: 4\n", "unknown key 'search.n_trails'"),
    ("space:\n  sparsity:\n    high: 1.5\n", "space.sparsity.high must be in [0, 1), got 1.5"),
    ("space:\n  criteria: [nope]\n", "criterion must be one of"),
    ("model:\n  name: nope\n", "model.name must be one of"),
    ("search: [unclosed\n", "is not valid YAML"),
    ("study: a\nsearch: {n_trials: 3}\nstudy: b\n", "the key 'study' is given twice"),
])
def test_cli_exits_2_with_one_line(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    proc = subprocess.run(cli_command("run", str(path), "--output-dir", str(tmp_path)),
                          capture_output=True, text=True, cwd=REPO_ROOT, env=cli_env(), timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], proc.stderr
    assert not (tmp_path / "default").exists()


def test_dense_key_changes_with_what_defines_the_dense_model():
    base = ExperimentConfig()
    assert base.dense_key() == ExperimentConfig().dense_key()
    assert base.dense_key() != config_from_dict({"seed": 1}).dense_key()
    assert base.dense_key() == config_from_dict({"search": {"n_trials": 3}}).dense_key()
