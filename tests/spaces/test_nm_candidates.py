"""n:m candidates hold the sparsity N:M applies (spaces.nm_grid): what duplicate detection, the
tables and the enqueued starting points see."""
from __future__ import annotations

import optuna
import pytest

from spaces import LayerInfo, SearchSpace, SpaceSettings, SparsityRange
from spaces.nm_grid import nm_applied, nm_kept, nm_sparsity

LAYERS = [
    LayerInfo("stem", "conv2d", (16, 1, 3, 3), 144, 9216),        # grayscale: 1 input channel
    LayerInfo("dw", "conv2d", (16, 1, 3, 3), 144, 9216),          # depthwise
    LayerInfo("pw", "conv2d", (32, 16, 1, 1), 512, 32768),
    LayerInfo("grp", "conv2d", (32, 8, 3, 3), 2304, 147456),      # groups=4: 8 inputs per group
    LayerInfo("odd", "linear", (8, 6), 48, 48),                   # a block of 4 and one of 2
    LayerInfo("head", "linear", (10, 8), 80, 80, is_classifier=True),
]


def nm_settings(**extra) -> SpaceSettings:
    return SpaceSettings(granularities=("n:m",), criteria=("magnitude",), bits=(8,), **extra)


@pytest.mark.parametrize("asked, kept, recorded", [
    (0.0, 4, 0.0), (0.1, 4, 0.0), (0.21, 3, 0.25), (0.29, 3, 0.25), (0.5, 2, 0.5),
    (0.6, 2, 0.5), (0.7, 1, 0.75), (0.875, 1, 0.75), (0.9, 1, 0.75), (0.999, 1, 0.75)])
def test_whole_blocks_snap_to_multiples_of_one_mth_keeping_at_least_one(asked, kept, recorded):
    assert nm_kept(asked, 16, 4) == kept
    assert nm_sparsity(asked, 16, 4) == recorded


def test_partial_blocks_and_layers_too_narrow_for_a_block():
    assert [nm_applied(n, 6, 4) for n in (4, 3, 2, 1)] == [0.0, 1 / 6, 2 / 6, 4 / 6]
    assert nm_sparsity(0.9, 6, 4) == 0.666667
    assert nm_sparsity(0.9, 3, 4) == 0.0 and nm_sparsity(0.9, 1, 4) == 0.0
    assert nm_sparsity(0.7, 16, 4, high=0.7) == 0.5       # 0.75 would pass the layer's bound


def test_parameters_rounding_to_the_same_n_make_one_candidate_found_as_a_duplicate():
    from optuna.distributions import FloatDistribution
    from optuna.trial import TrialState, create_trial

    from search.run.objective import find_duplicate

    space = SearchSpace(LAYERS, nm_settings(sparsity=SparsityRange(scale="linear", step=0.01)))
    names = space.searched_layers()
    first = space.from_params({**{f"sparsity.{n}": 0.21 for n in names}, "sparsity.odd": 0.1})
    second = space.from_params({**{f"sparsity.{n}": 0.29 for n in names}, "sparsity.odd": 0.2})
    assert first == second
    assert first.sparsity == {"stem": 0.0, "dw": 0.0, "pw": 0.25, "grp": 0.25, "odd": 0.166667,
                              "head": 0.0}
    done = create_trial(state=TrialState.COMPLETE, values=[0.9],
                        params={"sparsity.pw": 0.21},
                        distributions={"sparsity.pw": FloatDistribution(0.0, 0.99, step=0.01)},
                        user_attrs={"candidate": first.to_flat_dict()})
    assert find_duplicate([done], second.to_flat_dict()) is done


def test_asked_sparsity_past_the_last_pattern_records_one_of_m():
    space = SearchSpace(LAYERS, nm_settings(sparsity=SparsityRange(0.0, 0.999)))
    candidate = space.uniform_candidate(0.99, 8)
    assert candidate.sparsity == {"stem": 0.0, "dw": 0.0, "pw": 0.75, "grp": 0.75,
                                  "odd": 0.666667, "head": 0.0}


def test_a_layer_bound_below_the_nearest_pattern_gets_the_pattern_below_it():
    space = SearchSpace(LAYERS, nm_settings(max_sparsity={"pw": 0.7},
                                            sparsity=SparsityRange(scale="linear")))
    assert space.uniform_candidate(0.9, 8).sparsity["pw"] == 0.5
    assert space.uniform_candidate(0.9, 8).sparsity["grp"] == 0.75


def test_block_size_decides_the_grid():
    space = SearchSpace(LAYERS, nm_settings(), nm_block=8)
    assert space.uniform_candidate(0.5, 8).sparsity == {
        "stem": 0.0, "dw": 0.0, "pw": 0.5, "grp": 0.5, "odd": 0.0, "head": 0.0}


@pytest.mark.parametrize("extra", [
    {}, {"parametrization": "global_offset"}, {"groups": {"convs": "type:conv2d"}},
    {"parametrization": "global_offset", "groups": {"convs": "type:conv2d"}},
    {"sparsity": SparsityRange(scale="linear", step=0.3)}])
def test_recorded_candidates_round_trip_through_their_parameters(extra):
    """Starting points are enqueued as ``to_params`` of a recorded candidate: the trial that runs
    them must rebuild that same candidate."""
    space = SearchSpace(LAYERS, SpaceSettings(granularities=("unstructured", "n:m"), bits=(8,),
                                              criteria=("magnitude",), **extra))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    drawn = 0
    for _ in range(150):
        trial = study.ask()
        candidate = space.suggest(trial)
        study.tell(trial, 0.0)
        if candidate.granularity != "n:m":
            continue
        drawn += 1
        assert space.from_params(trial.params) == candidate
        assert space.from_params(space.to_params(candidate)) == candidate
        assert candidate.sparsity["stem"] == candidate.sparsity["dw"] == 0.0
        assert all(candidate.sparsity[n] in (0.0, 0.25, 0.5, 0.75) for n in ("pw", "grp"))
    assert drawn > 30
    only_nm = SearchSpace(LAYERS, nm_settings(**extra))
    for asked in (0.0, 0.21, 0.29, 0.5, 0.75, 0.9, 0.99):
        made = only_nm.candidate_for({n: asked for n in only_nm.searched_layers()},
                                     {n: 8 for n in only_nm.layer_names})
        assert made.granularity == "n:m"
        assert only_nm.from_params(only_nm.to_params(made)) == made
