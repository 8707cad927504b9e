"""The evolutionary sampler (``search.sampler: evo``) on real Optuna studies over our space."""
from __future__ import annotations

import csv

import numpy as np
import optuna
import pytest
import yaml

from conftest import tiny_config_dict
from search.pareto import pareto_front
from search.run.evolutionary import EvolutionarySampler, is_layer_sparsity, step_value
from spaces import LayerInfo, SearchSpace, SpaceSettings, SparsityRange

optuna.logging.set_verbosity(optuna.logging.WARNING)

LAYERS = [LayerInfo(f"conv{i}", "conv2d", (8, 8, 3, 3), 576, 576 * 16 * (4 - i))
          for i in range(4)] + [LayerInfo("fc", "linear", (10, 64), 640, 640, is_classifier=True)]
DIRECTIONS = ["maximize", "minimize"]
WARMUP = 8


def make_space(parametrization: str = "per_layer", **sparsity) -> SearchSpace:
    return SearchSpace(LAYERS, SpaceSettings(sparsity=SparsityRange(**sparsity), bits=(4, 8, 32),
                                             criteria=("magnitude", "random"),
                                             parametrization=parametrization))


def run_study(space: SearchSpace, seed: int, n_trials: int = 60) -> optuna.Study:
    """Analytic objectives: a made-up accuracy that falls with sparsity and bits, and the
    effective MACs. Every 7th trial is stopped early, every 11th fails."""
    study = optuna.create_study(directions=DIRECTIONS,
                                sampler=EvolutionarySampler(population_size=WARMUP, seed=seed))

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        candidate = space.suggest(trial)
        if trial.number % 7 == 6:
            raise optuna.TrialPruned()
        if trial.number % 11 == 10:
            raise RuntimeError("a failing trial")
        weights = {layer.name: layer.macs for layer in LAYERS}
        density = {n: 1.0 - s for n, s in candidate.sparsity.items()}
        macs = sum(weights[n] * density[n] * candidate.bits[n] / 32 for n in weights)
        accuracy = 1.0 - sum((1 - density[n]) ** 4 for n in density) / 4 \
            - 0.05 * sum(candidate.bits[n] == 4 for n in weights) \
            - (0.1 if candidate.criterion == "random" else 0.0)
        return accuracy, macs

    study.optimize(objective, n_trials=n_trials, catch=(RuntimeError,))
    return study


def contained(dist: optuna.distributions.BaseDistribution, value) -> bool:
    return dist._contains(dist.to_internal_repr(value))


@pytest.mark.parametrize("sparsity", [{}, {"scale": "linear", "step": 0.1, "high": 0.9},
                                      {"high": 0.999, "log_step": 0.1},
                                      {"parametrization": "global_offset"}])
def test_mutations_stay_inside_every_distribution(sparsity):
    space = make_space(**sparsity)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    sampler = EvolutionarySampler(seed=0)
    for _ in range(200):
        trial = study.ask()
        space.suggest(trial)
        study.tell(trial, 0.0)
        dists = trial.distributions
        for _ in range(5):
            child = sampler.mutate(trial.params, dists)
            assert set(child) == set(dists)
            assert all(contained(dists[n], v) for n, v in child.items()), child
            assert child != trial.params


def test_a_level_switch_moves_two_layers_by_equal_and_opposite_steps():
    space = make_space()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=4))
    sampler = EvolutionarySampler(seed=0, shift_probability=0.0, choice_probability=0.0)
    sizes = set()
    for _ in range(100):
        trial = study.ask()
        space.suggest(trial)
        study.tell(trial, 0.0)
        child = sampler.mutate(trial.params, trial.distributions)
        moved = {n: round((child[n] - v) / 0.05) for n, v in trial.params.items() if child[n] != v}
        assert len(moved) == 2 and all(is_layer_sparsity(n) for n in moved), moved
        assert sum(moved.values()) == 0
        sizes |= {abs(m) for m in moved.values()}
    assert sizes == set(range(1, sampler.max_steps + 1))


def test_step_value_respects_step_low_high_and_log():
    grid = optuna.distributions.FloatDistribution(-2.0, 0.0, step=0.05)
    assert step_value(-1.0, grid, +1) == pytest.approx(-0.95)
    assert step_value(0.0, grid, +1) is None and step_value(-2.0, grid, -1) is None
    log = optuna.distributions.FloatDistribution(1e-3, 1.0, log=True)
    up = step_value(1e-3, log, +1)
    assert contained(log, up) and up == pytest.approx(10 ** (-3 + 3 / 20))
    assert step_value(1.0, log, +1) is None
    integer = optuna.distributions.IntDistribution(1, 9, step=2)
    assert step_value(9, integer, -1) == 7 and step_value(9, integer, +1) is None
    assert is_layer_sparsity("log_density.conv1") and is_layer_sparsity("offset.sparsity.x")
    assert not is_layer_sparsity("global.log_density") and not is_layer_sparsity("bits.conv1")


def test_after_the_warm_up_each_proposal_is_a_small_mutation_of_a_front_member():
    study = run_study(make_space(), seed=0)
    trials = study.get_trials(deepcopy=False)
    checked = 0
    for trial in trials:
        done = [t for t in trials[:trial.number] if t.state == optuna.trial.TrialState.COMPLETE]
        if len(done) < WARMUP:
            continue
        front = [done[i] for i in pareto_front(np.array([t.values for t in done]), DIRECTIONS)]
        distance = min(sum(trial.params[n] != f.params.get(n) for n in trial.params)
                       for f in front)
        assert 1 <= distance <= 3, (trial.number, distance)
        checked += 1
    assert checked >= 30


def test_stopped_and_failed_trials_are_never_parents():
    study = run_study(make_space(), seed=1, n_trials=30)
    pool = EvolutionarySampler(population_size=WARMUP, seed=1).parent_pool(study)
    assert pool and all(t.state == optuna.trial.TrialState.COMPLETE for t in pool)
    states = {t.state for t in study.trials}
    assert {optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL} <= states


def test_with_constraints_only_trials_within_them_are_parents():
    study = run_study(make_space(), seed=2, n_trials=30)
    limit = float(np.median([t.values[1] for t in study.get_trials(states=(
        optuna.trial.TrialState.COMPLETE,))]))
    within = lambda trial: [trial.values[1] - limit]
    pool = EvolutionarySampler(population_size=WARMUP, seed=2,
                               constraints_func=within).parent_pool(study)
    assert pool and all(t.values[1] <= limit for t in pool)
    unconstrained = EvolutionarySampler(population_size=WARMUP, seed=2).parent_pool(study)
    assert any(t.values[1] > limit for t in unconstrained)


def test_same_seed_same_proposals_and_another_seed_others():
    space = make_space()
    params = lambda seed: [t.params for t in run_study(space, seed, n_trials=30).trials]
    assert params(5) == params(5)
    assert params(5) != params(6)


def test_bad_probabilities_are_refused_with_the_rule():
    with pytest.raises(ValueError, match=r"shift_probability must be in \[0, 1\], got 1.5"):
        EvolutionarySampler(shift_probability=1.5)
    with pytest.raises(ValueError, match="max_steps must be >= 1, got 0"):
        EvolutionarySampler(max_steps=0)


def test_a_tiny_study_runs_with_the_evo_sampler_end_to_end(tmp_path, capsys):
    from search.cli.main import main

    data = tiny_config_dict(tmp_path, sampler="evo", n_trials=12, population_size=4)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["run", str(path)]) == 0
    with open(tmp_path / "runs" / "tiny" / "trials.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len([r for r in rows if r["state"] in ("COMPLETE", "PRUNED")]) == 12
    assert sum(r["origin"] == "sampler" for r in rows) >= 5


def test_an_unknown_sampler_name_lists_evo_among_the_choices(tmp_path):
    from search.config import config_from_dict
    from search.schema import ConfigError

    with pytest.raises(ConfigError, match=r"search.sampler must be one of \[.*'evo'\], got 'evo2'"):
        config_from_dict(tiny_config_dict(tmp_path, sampler="evo2"))
