"""The space's method dimensions: conditional criteria, options, layer groups, round trips."""
from __future__ import annotations

import optuna
import pytest

from spaces import Candidate, LayerInfo, SearchSpace, SpaceSettings

LAYERS = [
    LayerInfo("features.0", "conv2d", (4, 1, 3, 3), 36, 2304),
    LayerInfo("features.2", "conv2d", (8, 4, 3, 3), 288, 18432),
    LayerInfo("classifier.1", "linear", (16, 32), 512, 512),
    LayerInfo("classifier.3", "linear", (10, 16), 160, 160, is_classifier=True),
]
ALLOWED = {"unstructured": ["magnitude", "taylor"], "channel": ["magnitude", "taylor", "fpgm"]}


def full_settings(**extra) -> SpaceSettings:
    return SpaceSettings(criteria=("magnitude", "taylor", "fpgm"),
                         granularities=("unstructured", "channel"),
                         schedules=("oneshot", "gradual", "during_training"),
                         regularization=(0.0, 1e-4), distillation=(False, True),
                         finetune_epochs=(1, 3), **extra)


def test_criterion_is_drawn_among_those_of_the_granularity_and_round_trips():
    space = SearchSpace(LAYERS, full_settings(), criteria_by_granularity=ALLOWED)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(60):
        trial = study.ask()
        candidate = space.suggest(trial)
        assert candidate.criterion in ALLOWED[candidate.granularity]
        assert f"criterion.{candidate.granularity}" in trial.params
        seen.add((candidate.criterion, candidate.granularity, candidate.schedule,
                  candidate.options.get("reg", 0.0), candidate.options.get("distill", False),
                  candidate.options["finetune_epochs"]))
        assert space.from_params(trial.params) == candidate
        assert space.from_params(space.to_params(candidate)) == candidate
        assert Candidate.from_flat_dict(candidate.to_flat_dict()) == candidate
        study.tell(trial, 0.0)
    assert ("fpgm", "unstructured") not in {(s[0], s[1]) for s in seen}
    assert {s[2] for s in seen} == {"oneshot", "gradual", "during_training"}
    assert {s[4] for s in seen} == {False, True} and {s[5] for s in seen} == {1, 3}


def test_neutral_options_stay_out_of_the_candidate():
    space = SearchSpace(LAYERS, SpaceSettings())
    candidate = space.dense_candidate()
    assert candidate.options == {}
    fixed = SearchSpace(LAYERS, SpaceSettings(regularization=(1e-3,), distillation=(True,)))
    assert fixed.dense_candidate().options == {"reg": 1e-3, "distill": True}
    params = fixed.to_params(fixed.dense_candidate())
    assert not {"reg", "distill", "granularity", "schedule"} & set(params)


def test_groups_share_one_sparsity_value():
    settings = SpaceSettings(groups={"convs": "type:conv2d", "fc": "regex:^classifier\\.1$"})
    space = SearchSpace(LAYERS, settings)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(10):
        trial = study.ask()
        candidate = space.suggest(trial)
        assert candidate.sparsity["features.0"] == candidate.sparsity["features.2"]
        assert not any(key.startswith("sparsity.") for key in trial.params)
        assert {"group_log_density.convs", "group_log_density.fc"} <= set(trial.params)
        assert space.from_params(space.to_params(candidate)) == candidate
        study.tell(trial, 0.0)
    uniform = space.uniform_candidate(0.5, 8)
    snapped = 0.498813   # 0.5 on the default log-density grid: 1 - 10 ** -0.3
    assert uniform.sparsity == {"features.0": snapped, "features.2": snapped,
                                "classifier.1": snapped, "classifier.3": 0.0}


def test_group_patterns_are_checked():
    with pytest.raises(ValueError, match="space.groups.x: layer type must be one of"):
        SpaceSettings(groups={"x": "type:lstm"})
    with pytest.raises(ValueError, match="space.groups.y: invalid regular expression"):
        SpaceSettings(groups={"y": "regex:(("})
    with pytest.raises(ValueError, match="space.groups.z: pattern 'regex:nothing' matches no"):
        SearchSpace(LAYERS, SpaceSettings(groups={"z": "regex:nothing"}))
    with pytest.raises(ValueError, match="'foo:' is no pattern kind .type:, regex:, each:"):
        SearchSpace(LAYERS, SpaceSettings(groups={"w": "foo:bar"}))


BLOCKS = [LayerInfo(f"blocks.{b}.attention.{p}_proj", "linear", (8, 8), 64, 64)
          for b in (0, 1) for p in "qkvo"] + [
    LayerInfo(f"blocks.{b}.mlp.{i}", "linear", (8, 8), 64, 64) for b in (0, 1) for i in (0, 2)] + [
    LayerInfo("head", "linear", (5, 8), 40, 40, is_classifier=True)]


def test_transformer_groups_one_value_per_block_and_for_all_query_projections():
    settings = SpaceSettings(groups={
        "queries": "regex:\\.q_proj$",
        "qkv": "each:^blocks\\.(\\d+)\\.attention\\.[kv]_proj$",
        "block": "each:^blocks\\.(\\d+)\\."})
    space = SearchSpace(BLOCKS, settings)
    groups = {name: space.group_of(name) for name in space.searched_layers()}
    assert groups["blocks.0.attention.q_proj"] == groups["blocks.1.attention.q_proj"] == "queries"
    assert groups["blocks.0.attention.k_proj"] == groups["blocks.0.attention.v_proj"] == "qkv[0]"
    assert groups["blocks.1.attention.v_proj"] == "qkv[1]"
    assert groups["blocks.1.attention.o_proj"] == groups["blocks.1.mlp.2"] == "block[1]"
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    candidate = space.suggest(trial)
    assert {key for key in trial.params if key.startswith("group_")} == {
        f"group_log_density.{g}" for g in ("queries", "qkv[0]", "qkv[1]", "block[0]", "block[1]")}
    assert candidate.sparsity["blocks.1.mlp.0"] == candidate.sparsity["blocks.1.attention.o_proj"]
    assert space.from_params(trial.params) == candidate
    with pytest.raises(ValueError, match="an 'each:' pattern needs a capture group"):
        SpaceSettings(groups={"block": "each:^blocks\\."})


def test_a_granularity_without_usable_criterion_is_refused():
    settings = SpaceSettings(criteria=("fpgm",), granularities=("unstructured",))
    with pytest.raises(ValueError, match="granularity 'unstructured' has no usable criterion"):
        SearchSpace(LAYERS, settings, criteria_by_granularity={"unstructured": []})


def test_the_reference_is_float_even_when_the_space_draws_narrower_bits():
    narrow = SearchSpace(LAYERS, SpaceSettings(bits=(4, 8)))
    assert set(narrow.dense_candidate().bits.values()) == {8}       # the widest it can draw
    reference = narrow.reference_candidate()
    assert set(reference.bits.values()) == {32} and set(reference.sparsity.values()) == {0.0}
    wide = SearchSpace(LAYERS, SpaceSettings())
    assert wide.reference_candidate() == wide.dense_candidate()      # 32 among the bits
