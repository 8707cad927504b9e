import optuna
import pytest

from spaces import LayerInfo, SearchSpace, SpaceSettings, SparsityRange

LAYERS = [
    LayerInfo("conv", "conv2d", (4, 1, 3, 3), 36, 2304),
    LayerInfo("fc", "linear", (10, 64), 640, 640, is_classifier=True),
]


def test_suggest_draws_on_the_grid_and_skips_the_excluded_classifier():
    space = SearchSpace(LAYERS, SpaceSettings(sparsity=SparsityRange(0.0, 0.9, 0.1,
                                                                     scale="linear")))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        trial = study.ask()
        candidate = space.suggest(trial)
        assert candidate.sparsity["fc"] == 0.0
        assert "sparsity.fc" not in trial.params
        assert abs(candidate.sparsity["conv"] * 10 - round(candidate.sparsity["conv"] * 10)) < 1e-9
        assert candidate.bits["conv"] in (2, 4, 8, 16, 32)
        assert space.from_params(trial.params) == candidate
        study.tell(trial, 0.0)


def test_log_density_reaches_high_sparsities_as_often_as_moderate_ones():
    space = SearchSpace(LAYERS, SpaceSettings(sparsity=SparsityRange(0.0, 0.999)))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    values = []
    for _ in range(600):
        trial = study.ask()
        candidate = space.suggest(trial)
        assert set(trial.params) >= {"log_density.conv"}
        assert space.from_params(trial.params) == candidate
        values.append(candidate.sparsity["conv"])
        study.tell(trial, 0.0)
    share = lambda lo, hi: sum(lo <= v < hi for v in values) / len(values)
    # One decade of density each: [0, 0.9), [0.9, 0.99), [0.99, 0.999]; uniform would give 0.9/0.09.
    assert 0.25 < share(0.0, 0.9) < 0.42 and 0.25 < share(0.9, 0.99) < 0.42
    assert 0.2 < share(0.99, 1.0) and max(values) == 0.999 and min(values) == 0.0


def test_classifier_cap_limits_its_sparsity():
    space = SearchSpace(LAYERS, SpaceSettings(classifier="cap", classifier_max_sparsity=0.3))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    values = [space.suggest(study.ask()).sparsity["fc"] for _ in range(30)]
    assert max(values) <= 0.3 and len(set(values)) > 1


def test_to_params_round_trips_through_from_params():
    space = SearchSpace(LAYERS, SpaceSettings())
    candidate = space.uniform_candidate(0.83, 7)   # snapped to the grid and to allowed bits
    assert candidate.sparsity == {"conv": 0.822172, "fc": 0.0}    # 1 - 10 ** -0.75
    assert candidate.bits == {"conv": 8, "fc": 8}
    assert space.from_params(space.to_params(candidate)) == candidate


def test_empty_space_is_an_error():
    with pytest.raises(ValueError, match="search space is empty"):
        SearchSpace([], SpaceSettings())


def test_settings_reject_bad_values():
    with pytest.raises(ValueError, match=r"space.bits must be values from .*got 3\.5"):
        SpaceSettings(bits=(8, 3.5))
    with pytest.raises(ValueError, match=r"space.sparsity.high must be in \[0, 1\), got 1.5"):
        SparsityRange(high=1.5)


THREE = [
    LayerInfo("features.0", "conv2d", (4, 1, 3, 3), 36, 2304),
    LayerInfo("features.3", "conv2d", (8, 4, 3, 3), 288, 4608),
    LayerInfo("head", "linear", (10, 64), 640, 640, is_classifier=True),
]


def test_max_sparsity_caps_layers_by_exact_name_or_pattern():
    settings = SpaceSettings(sparsity=SparsityRange(0.0, 0.99),
                             max_sparsity={"features.0": 0.5, "type:linear": 0.3},
                             classifier="include")
    space = SearchSpace(THREE, settings)
    bounds = space.sparsity_bounds()
    assert bounds == {"features.0": (0.0, 0.5), "features.3": (0.0, 0.99), "head": (0.0, 0.3)}
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    drawn = [space.suggest(study.ask()).sparsity for _ in range(60)]
    assert max(d["features.0"] for d in drawn) <= 0.5 < max(d["features.3"] for d in drawn)
    assert max(d["head"] for d in drawn) <= 0.3
    # A bound of 0 (a layer that cannot lose anything) takes the layer out of the search.
    space = SearchSpace(THREE, SpaceSettings(max_sparsity={"features.3": 0.0}))
    assert space.searched_layers() == ["features.0"]


def test_a_group_shares_its_tightest_bound():
    settings = SpaceSettings(groups={"convs": "type:conv2d"}, max_sparsity={"features.3": 0.6})
    space = SearchSpace(THREE, settings)
    assert space.sparsity_bounds()["features.0"] == (0.0, 0.6)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    assert max(space.suggest(study.ask()).sparsity["features.0"] for _ in range(40)) <= 0.6


def test_merging_bounds_keeps_the_tighter_one_and_is_idempotent():
    settings = SpaceSettings(max_sparsity={"features.0": 0.5})
    merged = settings.with_max_sparsity({"features.0": 0.8, "features.3": 0.9})
    assert merged.max_sparsity == {"features.0": 0.5, "features.3": 0.9}
    assert merged.with_max_sparsity({"features.0": 0.8, "features.3": 0.9}) == merged


def test_bad_max_sparsity_names_the_field_and_value():
    with pytest.raises(ValueError, match=r"space.max_sparsity.conv must be in \[0, 1\), got 1.2"):
        SpaceSettings(max_sparsity={"conv": 1.2})
    with pytest.raises(ValueError, match=r"space.max_sparsity: 'decoder' is neither a layer name"):
        SearchSpace(THREE, SpaceSettings(max_sparsity={"decoder": 0.5}))
    with pytest.raises(ValueError, match=r"space.max_sparsity.type:lstm: layer type must be"):
        SpaceSettings(max_sparsity={"type:lstm": 0.5})
    with pytest.raises(ValueError, match=r"space.sensitivity_max_drop must be in \[0, 1\).*got -0.1"):
        SpaceSettings(sensitivity_max_drop=-0.1)


def test_global_offset_draws_one_global_value_and_bounded_offsets():
    import math

    settings = SpaceSettings(parametrization="global_offset", max_offset=0.3,
                             max_sparsity={"features.3": 0.9}, classifier="include")
    space = SearchSpace(THREE, settings)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    spread = []
    for _ in range(80):
        trial = study.ask()
        candidate = space.suggest(trial)
        assert set(trial.params) >= {"global.log_density", "offset.log_density.features.0",
                                     "offset.log_density.features.3", "offset.log_density.head"}
        assert not any(key.startswith("log_density.") for key in trial.params)
        base = trial.params["global.log_density"]
        for name, sparsity in candidate.sparsity.items():
            low, high = space.sparsity_bounds()[name]
            assert low <= sparsity <= high + 1e-9
            if sparsity < high - 1e-9 and sparsity > 0:     # not clamped: within the offset
                assert abs(math.log10(1 - sparsity) - base) <= 0.3 + 1e-4
        assert space.from_params(trial.params) == candidate
        spread.append(max(candidate.sparsity.values()) - min(candidate.sparsity.values()))
        study.tell(trial, 0.0)
    assert max(spread) > 0.1                         # layers do differ


def test_global_offset_enqueues_hand_made_candidates_with_zero_offsets():
    settings = SpaceSettings(parametrization="global_offset", classifier="include")
    space = SearchSpace(THREE, settings)
    uniform = space.uniform_candidate(0.9, 8)
    params = space.to_params(uniform)
    assert params["global.log_density"] == -1.0
    assert all(value == 0.0 for key, value in params.items() if key.startswith("offset."))
    assert set(uniform.sparsity.values()) == {0.9}
    # different per-layer values: the median is the global value, the rest are offsets
    mixed = space.candidate_for({"features.0": 0.5, "features.3": 0.9, "head": 0.99}, {})
    assert mixed.sparsity["features.3"] == 0.9
    assert mixed.sparsity["head"] > 0.9 > mixed.sparsity["features.0"]
    # max_offset 0: one global sparsity for every searched layer, no offset parameters
    single = SearchSpace(THREE, SpaceSettings(parametrization="global_offset", max_offset=0.0))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    trial = study.ask()
    candidate = single.suggest(trial)
    assert not [key for key in trial.params if "log_density" in key and key != "global.log_density"]
    assert candidate.sparsity["features.0"] == candidate.sparsity["features.3"]


def test_bad_parametrization_names_the_field():
    with pytest.raises(ValueError, match=r"space.parametrization must be one of \['per_layer', "
                                         r"'global_offset'\], got 'global'"):
        SpaceSettings(parametrization="global")
    with pytest.raises(ValueError, match=r"space.max_offset must be in \[0, 3\].*got -1"):
        SpaceSettings(max_offset=-1)


def test_min_kept_per_output_bounds_each_layer_by_what_it_must_keep():
    big = LayerInfo("big", "linear", (128, 1840), 235_520, 235_520)       # 235k weights
    small = LayerInfo("small", "conv2d", (16, 1, 3, 3), 144, 9216)
    settings = SpaceSettings(classifier="include", min_kept_per_output=2)
    space = SearchSpace([big, small], settings)
    bounds = space.sparsity_bounds()
    assert bounds["big"][1] == pytest.approx(1 - 2 * 128 / 235_520)      # 0.9989: beyond 0.99
    assert bounds["small"][1] == pytest.approx(1 - 2 * 16 / 144)          # 0.78: it keeps 2 of 9
    assert "space.min_kept_per_output: 2 weights per output unit" in space.describe_bounds()
    assert "big 0.9989" in space.describe_bounds()
    # What the sampler draws stays inside; the largest draw keeps at least 2 weights per row.
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    drawn = [space.suggest(study.ask()).sparsity["big"] for _ in range(300)]
    assert max(drawn) <= bounds["big"][1] + 1e-9 and max(drawn) > 0.99
    # A per-layer cap still applies on top; off (None) is the flat sparsity.high.
    capped = SearchSpace([big, small], SpaceSettings(classifier="include", min_kept_per_output=2,
                                                     max_sparsity={"big": 0.9}))
    assert capped.sparsity_bounds()["big"][1] == 0.9
    flat = SearchSpace([big, small], SpaceSettings(classifier="include"))
    assert flat.sparsity_bounds()["big"][1] == 0.99
    with pytest.raises(ValueError, match="space.min_kept_per_output must be a finite number > 0"):
        SpaceSettings(min_kept_per_output=0)


def test_a_group_enqueued_from_per_layer_values_removes_as_many_weights():
    """A rule's per-layer sparsities (global magnitude, ERK) put into one group value: the
    members' weight-weighted mean, so the baseline removes the share it says (the first
    member's value, a small layer's, removed far less)."""
    space = SearchSpace(THREE, SpaceSettings(groups={"convs": "type:conv2d"},
                                             sparsity=SparsityRange(0.0, 0.99, 0.001,
                                                                    scale="linear")))
    convs = [layer for layer in THREE if layer.kind == "conv2d"]
    wanted = {convs[0].name: 0.1, convs[1].name: 0.6}
    candidate = space.candidate_for(wanted, {})
    removed = sum(candidate.sparsity[layer.name] * layer.params for layer in convs)
    asked = sum(wanted[layer.name] * layer.params for layer in convs)
    assert removed == pytest.approx(asked, rel=0.01)
    assert len({candidate.sparsity[layer.name] for layer in convs}) == 1     # one group value


def test_a_rule_that_empties_a_layer_gives_the_candidate_at_its_bound():
    """One global magnitude threshold can put every weight of a layer of small weights below it
    (sparsity 1.0): the baseline is clamped to the layer's bound, not a crash before any trial."""
    space = SearchSpace(LAYERS, SpaceSettings())
    searched = space.searched_layers()
    bounds = space.sparsity_bounds()
    wanted = {name: 1.0 for name in searched}
    candidate = space.candidate_for(wanted, {name: 8 for name in space.layer_names})
    for name in searched:
        assert candidate.sparsity[name] == pytest.approx(bounds[name][1], abs=0.01)
        assert candidate.sparsity[name] <= bounds[name][1]


def test_a_space_whose_only_layer_is_the_excluded_classifier_says_nothing_is_pruned():
    head = LayerInfo("head", "linear", (3, 36), 108, 108, is_classifier=True)
    text = SearchSpace([head], SpaceSettings()).describe_bounds()
    assert text.startswith("note: no layer's sparsity is searched (1 Conv2d/Linear layer(s)")
    assert "space.classifier 'exclude'" in text and "space.classifier: include" in text
    assert SearchSpace([head], SpaceSettings(classifier="include")).describe_bounds().startswith(
        "sparsity upper bounds")
