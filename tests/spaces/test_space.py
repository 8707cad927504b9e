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
