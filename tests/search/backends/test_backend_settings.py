"""The parallel:/ray: config sections, the backend registry and the CLI flags that set them."""
from __future__ import annotations

import sys

import pytest

from search.run.backends import BACKENDS, MissingExtra, get_backend
from search.run.backends.settings import BACKEND_NAMES
from search.cli.args import resolve_config
from search.cli.main import build_parser
from search.config import config_from_dict, dump_config, load_config
from search.schema import ConfigError


def test_registry_and_config_name_the_same_backends():
    assert set(BACKENDS) == set(BACKEND_NAMES) == {"optuna", "ray"}
    assert get_backend("optuna").name == "optuna"
    with pytest.raises(ValueError, match=r"backend must be one of \['optuna', 'ray'\], got 'dask'"):
        get_backend("dask")


def test_sections_round_trip_through_yaml(tmp_path):
    config = config_from_dict({"parallel": {"backend": "ray", "workers": 3},
                               "ray": {"address": "10.0.0.5:6379", "cpus_per_trial": 0.5,
                                       "gpus_per_trial": 0.25, "max_concurrent": 4,
                                       "max_failures": 2, "results_dir": "/shared/ray"}})
    path = tmp_path / "c.yaml"
    path.write_text(dump_config(config))
    again = load_config(path)
    assert again == config
    assert again.ray.gpus_per_trial == 0.25 and again.parallel.workers == 3


@pytest.mark.parametrize("data, message", [
    ({"parallel": {"backend": "dask"}},
     "parallel.backend must be one of ['optuna', 'ray'], got 'dask'"),
    ({"parallel": {"workers": 0}}, "parallel.workers must be >= 1, got 0"),
    ({"ray": {"address": "localhost"}}, "ray.address must be HOST:PORT, ray://HOST:PORT or 'auto', "
                                        "got 'localhost'"),
    ({"ray": {"cpus_per_trial": 0}}, "ray.cpus_per_trial must be > 0, got 0"),
    ({"ray": {"max_failures": -1}}, "ray.max_failures must be >= 0, got -1"),
    ({"ray": {"gpus": 1}}, "unknown key 'ray.gpus'"),
])
def test_bad_values_name_field_rule_and_value(data, message):
    with pytest.raises(ConfigError) as info:
        config_from_dict(data)
    assert message in str(info.value)


def test_cli_flags_override_the_config():
    parser = build_parser()
    args = parser.parse_args(["run", "--workers", "2", "--threads", "1"])
    config = resolve_config(args)
    assert (config.parallel.backend, config.parallel.workers, config.threads) == ("optuna", 2, 1)
    config = resolve_config(parser.parse_args(["run", "--address", "127.0.0.1:6380"]))
    assert config.parallel.backend == "ray" and config.ray.address == "127.0.0.1:6380"
    config = resolve_config(parser.parse_args(["run", "--backend", "ray"]))
    assert config.parallel.backend == "ray" and config.ray.address is None
    args = parser.parse_args(["worker", "--study", "s", "--storage", "journal:///x.log"])
    config = resolve_config(args)
    assert config.study == "s" and config.search.storage == "journal:///x.log"


def test_missing_ray_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what an install without the extra looks like
    monkeypatch.delitem(sys.modules, "search.run.backends.ray_backend", raising=False)
    with pytest.raises(MissingExtra, match=r"pip install 'sparsity-search\[ray\]'"):
        get_backend("ray")
