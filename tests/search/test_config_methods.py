"""Config of the pruning methods: names, impossible combinations, the ``pruning:`` section."""
from __future__ import annotations

import pytest

from conftest import tiny_config_dict
from search.config import config_from_dict, criteria_by_granularity
from search.schema import ConfigError


@pytest.mark.parametrize("space, message", [
    ({"criteria": ["fpgm"], "granularities": ["unstructured"]},
     "space.criteria: criterion 'fpgm' works only with granularities ['channel'] (Filter pruning "
     "via geometric median (He et al. 2019): a channel's score is the sum of its L2 distances to "
     "all other channels of the layer; the most redundant"),
    ({"criteria": ["magnitude", "l2"]},
     "space.criteria: criterion 'l2' works only with granularities ['channel']"),
    ({"criteria": ["l2"], "granularities": ["channel", "n:m"]},
     "space.granularities: no criterion in space.criteria ['l2'] works with granularity 'n:m'"),
    ({"granularities": ["filter"]},
     "space.granularities: granularity must be one of ['unstructured', 'channel', 'n:m'], "
     "got 'filter'"),
    ({"schedules": ["sometimes"]},
     "space.schedules: schedule must be one of ['oneshot', 'gradual', 'during_training'], "
     "got 'sometimes'"),
    ({"regularization": [-1.0]}, "space.regularization strengths must be >= 0, got -1.0"),
    ({"distillation": ["yes"]}, "field 'space.distillation[0]' must be true or false"),
])
def test_impossible_methods_are_refused_with_the_rule(space, message):
    with pytest.raises(ConfigError) as info:
        config_from_dict({"space": space})
    assert message in str(info.value)


def test_pruning_section_is_validated_and_round_trips():
    with pytest.raises(ConfigError, match=r"pruning.prune_at must be in \[0, 1\), got 1.5"):
        config_from_dict({"pruning": {"prune_at": 1.5}})
    config = config_from_dict({"pruning": {"nm_block": 8, "distill_temperature": 2.0},
                               "space": {"criteria": ["magnitude", "fpgm"],
                                         "granularities": ["unstructured", "channel"]}})
    assert config.pruning.nm_block == 8
    assert config_from_dict(config.to_dict()) == config
    assert criteria_by_granularity(config.space) == {"unstructured": ["magnitude"],
                                                     "channel": ["magnitude", "fpgm"]}


@pytest.mark.slow
def test_study_searches_methods_end_to_end(tmp_path):
    from search.api import run_search

    data = tiny_config_dict(tmp_path, n_trials=6)
    data["space"] = {"criteria": ["magnitude", "l2", "taylor"],
                     "granularities": ["unstructured", "channel"],
                     "schedules": ["oneshot", "gradual"], "regularization": [0.0, 1e-4],
                     "distillation": [False, True], "finetune_epochs": [1],
                     "groups": {"convs": "type:conv2d"}}
    result = run_search(config_from_dict(data), log=lambda line: None)
    trials = result.trials()
    assert len(trials) == 6
    assert trials["train_flops"].gt(0).all()
    channel = [t for t in result.study.trials if t.user_attrs["candidate"]["granularity"] == "channel"]
    assert channel
    for trial in channel:
        # Channel trials are costed as the physically smaller model.
        assert trial.user_attrs["flops"] == trial.user_attrs["flops_dense"]
