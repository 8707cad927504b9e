"""The LAMP and ERK baselines in a study: enqueued first, run, recorded in ``origin``."""
from __future__ import annotations

import pandas as pd
import pytest

from conftest import tiny_config_dict
from search.api import run_search
from search.config import config_from_dict
from search.schema import ConfigError


def test_a_study_with_lamp_and_erk_baselines_runs_and_records_their_origin(tmp_path):
    data = tiny_config_dict(tmp_path, n_trials=3, baselines=["lamp", "erk"],
                            baseline_sparsities=[0.8])
    result = run_search(config_from_dict(data), log=lambda _: None)
    trials = pd.read_csv(result.folder / "trials.csv")
    assert list(trials["origin"]) == ["dense", "lamp", "erk"]
    assert set(trials["state"]) == {"COMPLETE"}
    searched = trials.filter(like="sparsity.").drop(columns="sparsity.classifier.3")  # excluded
    sparsity = searched.iloc[1:]
    assert sparsity.nunique(axis=1).min() > 1      # each rule sets layers apart, unlike uniform
    assert not sparsity.iloc[0].equals(sparsity.iloc[1])    # and the two rules differ


def test_default_baselines_are_uniform_global_magnitude_and_erk():
    from search.config import SearchSettings

    assert SearchSettings().baselines == ("uniform", "global_magnitude", "erk")


def test_an_unknown_baseline_names_the_field_and_the_choices():
    with pytest.raises(ConfigError) as info:
        config_from_dict({"search": {"baselines": ["lamp", "erk2"]}})
    assert str(info.value) == ("search.baselines must be values from ['uniform', "
                               "'global_magnitude', 'lamp', 'erk'], got 'erk2'")


def test_default_baselines_are_enqueued_at_8_bits_only(tmp_path):
    from search.run.context import build_study_context
    from search.run.starting import starting_candidates

    data = tiny_config_dict(tmp_path, baseline_sparsities=[0.5, 0.9])
    del data["search"]["baseline_bits"]               # the default
    config = config_from_dict(data)
    context, space = build_study_context(config, log=lambda _: None)
    found = starting_candidates(space, context, config)
    assert [origin for origin, _ in found][:1] == ["dense"] and len(found) > 1
    assert {b for _, c in found[1:] for b in c.bits.values()} == {8}   # no 32-bit copies


def test_every_rule_keeps_all_dense_when_no_layer_is_searched(tmp_path):
    """A space whose bounds leave no layer searched (``sparsity.high: 0``): the baselines are the
    dense model at each baseline bit-width, once (global magnitude crashed on an empty list)."""
    from search.run.context import build_study_context
    from search.run.starting import starting_candidates

    data = tiny_config_dict(tmp_path, baseline_sparsities=[0.5, 0.9], baseline_bits=[8, 4],
                            baselines=["uniform", "global_magnitude", "lamp", "erk"])
    data["space"] = {"sparsity": {"high": 0.0}, "bits": [4, 8, 32]}
    config = config_from_dict(data)
    context, space = build_study_context(config, log=lambda _: None)
    found = starting_candidates(space, context, config)
    assert [origin for origin, _ in found] == ["dense", "uniform", "uniform"]
    assert [set(c.bits.values()) for _, c in found[1:]] == [{8}, {4}]
    assert all(set(c.sparsity.values()) == {0.0} for _, c in found)


def test_the_dense_point_clamped_into_the_space_is_not_called_dense(tmp_path):
    """With space.sparsity.low > 0 the first trial is the least sparse candidate the space
    allows; trials.csv said origin 'dense' for a model 30% sparse in every layer."""
    from search.run.context import build_study_context
    from search.run.starting import starting_candidates

    data = tiny_config_dict(tmp_path, n_trials=2)
    data["space"] = {**data.get("space", {}), "sparsity": {"low": 0.3}}
    config = config_from_dict(data)
    context, space = build_study_context(config, log=lambda _: None)
    origin, candidate = starting_candidates(space, context, config)[0]
    searched = space.searched_layers()            # (the classifier is not searched)
    assert origin == "least_sparse" and all(candidate.sparsity[n] >= 0.3 for n in searched)
