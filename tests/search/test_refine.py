"""Refinement of the front where it crosses "within X of the dense accuracy" (search.run.refine),
on real Optuna studies with a cheap analytic objective, and once end to end."""
from __future__ import annotations

import csv
import json
import math

import optuna
import pytest
import yaml
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import TrialState

from search.run.refine import PAIRS_TRIED, RefiningSampler, _halfway
from search.run.refine_settings import REFINED_KEY, RefineSettings
from search.run.study_view import StudyView
from tests.conftest import tiny_config_dict

optuna.logging.set_verbosity(optuna.logging.WARNING)
GRID = FloatDistribution(-2.0, 0.0, step=0.05)
DENSE = 0.99
LEVEL = DENSE - 0.01
EVERY_3 = RefineSettings(within=(0.01,), every=3)


def objective(trial: optuna.Trial) -> tuple[float, float]:
    """Accuracy rises with the total density up to the dense model's; cost is the density.
    A one-choice parameter too (a space with one criterion records it on every trial)."""
    trial.suggest_categorical("criterion", ["magnitude"])
    a = 10 ** trial.suggest_float("log_density.a", GRID.low, GRID.high, step=GRID.step)
    b = 10 ** trial.suggest_float("log_density.b", GRID.low, GRID.high, step=GRID.step)
    bits = trial.suggest_categorical("bits", [4, 8])
    density = (2 * a + b) / 3
    return DENSE - 0.2 * max(0.0, 0.4 - density) - (0.003 if bits == 4 else 0.0), density


def study_with(settings: RefineSettings, *, dense: bool = True, seed: int = 0,
               n_trials: int = 40, enqueue: int = 0) -> optuna.Study:
    sampler = RefiningSampler(optuna.samplers.RandomSampler(seed=seed), ["accuracy", "flops"],
                              ["maximize", "minimize"], settings)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    if dense:
        study.set_user_attr("dense_reference", {"accuracy": DENSE})
    for value in [-0.2 * i for i in range(enqueue)]:
        study.enqueue_trial({"log_density.a": value, "log_density.b": value, "bits": 8,
                             "criterion": "magnitude"})
    study.optimize(objective, n_trials=n_trials)
    return study


def refined(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.trials if t.user_attrs.get("origin") == "refine"]


def test_each_refinement_bisects_the_gap_at_the_level_or_switches_levels_of_a():
    study = study_with(EVERY_3, n_trials=90)
    trials = study.trials
    children = refined(study)
    bisections = [c for c in children if len(c.user_attrs[REFINED_KEY]) == 2]
    switches = [c for c in children if len(c.user_attrs[REFINED_KEY]) == 1]
    assert len(bisections) >= 4 and switches
    assert min(c.number for c in bisections) < min(c.number for c in switches)   # gaps first
    for child in children:
        assert child.number % 3 == 2                    # only on its turns
        parents = [trials[n] for n in child.user_attrs[REFINED_KEY]]
        a = parents[0]
        earlier = [t for t in trials[:child.number] if t.state == TrialState.COMPLETE]
        # A: among the cheapest trials reaching the level
        above = sorted(t.values[1] for t in earlier if t.values[0] >= LEVEL)
        assert a.values[1] in above[:PAIRS_TRIED]
        if len(parents) == 1:    # a level switch: equal and opposite steps in two layers
            moved = {n: round((child.params[n] - a.params[n]) / GRID.step)
                     for n in ("log_density.a", "log_density.b")}
            assert sum(moved.values()) == 0 and {abs(m) for m in moved.values()} <= {1, 2}
            assert child.params["bits"] == a.params["bits"]
            continue
        b = parents[1]    # B: among the most accurate trials cheaper than A
        cheaper = sorted((-t.values[0] for t in earlier if t.values[1] < a.values[1]))
        assert b.values[1] < a.values[1] and -b.values[0] in cheaper[:PAIRS_TRIED]
        for name in ("log_density.a", "log_density.b"):
            low, high = sorted((a.params[name], b.params[name]))
            assert low - 1e-9 <= child.params[name] <= high + 1e-9
            steps = round(abs(a.params[name] - b.params[name]) / GRID.step)
            moved = round(abs(child.params[name] - a.params[name]) / GRID.step)
            assert moved == math.ceil(steps / 2)        # half-way, rounded toward B
        assert child.params["bits"] in (a.params["bits"], b.params["bits"])
    first = children[0]   # the first one bisects the cheapest A with its own choices
    a = trials[first.user_attrs[REFINED_KEY][0]]
    assert len(first.user_attrs[REFINED_KEY]) == 2 and first.params["bits"] == a.params["bits"]


def test_refinement_narrows_the_gap_random_search_leaves():
    def cheapest_within(study):
        return min(t.values[1] for t in study.trials
                   if t.state == TrialState.COMPLETE and t.values[0] >= LEVEL)

    with_refine = [cheapest_within(study_with(EVERY_3, seed=s)) for s in range(5)]
    without = [cheapest_within(study_with(RefineSettings(within=()), seed=s)) for s in range(5)]
    assert sum(w < o for w, o in zip(with_refine, without)) >= 4, (with_refine, without)


def test_no_refinement_when_off_without_dense_reference_or_for_enqueued_trials():
    assert refined(study_with(RefineSettings()))               # on by default: 1 point
    assert not refined(study_with(RefineSettings(within=())))  # [] turns it off
    assert not refined(study_with(EVERY_3, dense=False))
    study = study_with(EVERY_3, n_trials=9, enqueue=9)   # every trial enqueued
    assert not refined(study)
    assert [t.params["log_density.a"] for t in study.trials] == pytest.approx(
        [-0.2 * i for i in range(9)])


def test_refinements_never_repeat_a_candidate_and_end_when_nothing_new_is_left():
    study = study_with(EVERY_3, n_trials=150, seed=3)
    keys = [json.dumps(t.params, sort_keys=True) for t in refined(study)]
    assert keys and len(keys) == len(set(keys))          # never a candidate already run
    # two layers x 2 step sizes x 2 directions per A: the turns go back to the wrapped sampler
    late = [t for t in study.trials if t.number % 3 == 2 and t.number > 100]
    assert any(t.user_attrs.get("origin") != "refine" for t in late)


def test_same_seed_same_refinements():
    params = lambda: [t.params for t in study_with(EVERY_3, seed=7, n_trials=60).trials]
    assert params() == params()


def test_halfway_rounds_toward_b_on_every_kind_of_grid():
    assert _halfway(-1.0, -1.05, GRID) == pytest.approx(-1.05)
    assert _halfway(-1.0, -1.5, GRID) == pytest.approx(-1.25)
    assert _halfway(-1.0, -1.15, GRID) == pytest.approx(-1.1)
    assert _halfway(-1.0, -0.85, GRID) == pytest.approx(-0.9)
    assert _halfway(-1.0, -1.0, GRID) == pytest.approx(-1.0)
    assert _halfway(2, 9, IntDistribution(1, 9)) == 6
    assert _halfway(0.1, 0.4, FloatDistribution(0.0, 1.0)) == pytest.approx(0.25)
    assert _halfway(1e-3, 1e-1, FloatDistribution(1e-4, 1.0, log=True)) == pytest.approx(1e-2)


@pytest.mark.parametrize("section, message", [
    ({"within": [1.5]}, r"search.refine.within must be accuracy drops in \[0, 1\), got 1.5"),
    ({"within": ["x"]}, r"field 'search.refine.within\[0\]' must be a number, got str 'x'"),
    ({"every": 1}, r"search.refine.every must be an integer >= 2, got 1"),
])
def test_bad_refine_settings_name_the_field_and_the_rule(tmp_path, section, message):
    from search.config import config_from_dict
    from search.schema import ConfigError

    with pytest.raises(ConfigError, match=message):
        config_from_dict(tiny_config_dict(tmp_path, refine=section))


def test_refinement_without_accuracy_among_the_objectives_is_refused(tmp_path):
    from search.config import config_from_dict
    from search.schema import ConfigError

    with pytest.raises(ConfigError, match=r"search.refine needs accuracy and a minimised cost "
                                          r"among search.objectives, got \['flops'\]"):
        config_from_dict(tiny_config_dict(tmp_path, refine={"within": [0.01]},
                                          objectives={"flops": "min"}))
    # left at its default, refinement turns itself off for such objectives
    config = config_from_dict(tiny_config_dict(tmp_path, objectives={"flops": "min"}))
    assert config.search.refine.levels(["flops"], ["minimize"]) == ()
    assert RefineSettings().levels(["accuracy", "flops"], ["maximize", "minimize"]) == (0.01,)
    with pytest.raises(ValueError, match="refinement needs accuracy"):
        RefiningSampler(optuna.samplers.RandomSampler(), ["flops"], ["minimize"], EVERY_3)


def test_a_tiny_study_records_its_refinements_in_trials_csv(tmp_path, capsys):
    from search.cli.main import main

    # a level 50 points below dense: reached at once, so the turns refine
    data = tiny_config_dict(tmp_path, n_trials=12, refine={"within": [0.5]})
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["run", str(path)]) == 0
    out = capsys.readouterr().out
    with open(tmp_path / "runs" / "tiny" / "trials.csv") as handle:
        rows = list(csv.DictReader(handle))
    refines = [r for r in rows if r["origin"] == "refine"]
    every = RefineSettings().every
    assert refines and all(int(r["trial"]) % every == every - 1 and r[REFINED_KEY]
                           for r in refines)
    for row in refines:     # the progress line says which trials it refines
        parents = "/".join(str(n) for n in json.loads(row[REFINED_KEY]))
        assert f"trial {row['trial']} (refines {parents})" in out
    assert all(r["state"] != "FAIL" for r in rows)


def test_a_study_view_reads_once_until_its_copy_is_older_than_max_age():
    study = optuna.create_study()
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    kept, fresh = StudyView(study, max_age=3600.0), StudyView(study, max_age=0.0)
    assert len(kept.trials()) == len(fresh.trials()) == 2
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    assert len(kept.trials()) == 2 and len(fresh.trials()) == 3
    assert len(fresh.trials(states=(TrialState.COMPLETE,))) == 3
    study.set_user_attr("dense_reference", {"accuracy": 0.5})
    assert fresh.user_attr("dense_reference") == {"accuracy": 0.5}


def test_refinement_bisects_the_front_within_the_constraints():
    """An infeasible trial (outside search.constraints) is off the front users pick from: it was
    taken as the cheapest accurate trial and its refinements came out infeasible too."""
    from optuna.distributions import CategoricalDistribution

    sampler = RefiningSampler(optuna.samplers.RandomSampler(seed=0), ["accuracy", "flops"],
                              ["maximize", "minimize"], EVERY_3)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    study.set_user_attr("dense_reference", {"accuracy": DENSE})
    dists = {"criterion": CategoricalDistribution(["magnitude"]), "log_density.a": GRID,
             "log_density.b": GRID, "bits": CategoricalDistribution([4, 8])}
    for log_density, over in ((0.0, -1.0), (-0.4, 1.0), (-0.2, -1.0), (-1.0, -1.0), (-0.6, -1.0)):
        density = 10 ** log_density
        study.add_trial(optuna.trial.create_trial(
            params={"criterion": "magnitude", "log_density.a": log_density,
                    "log_density.b": log_density, "bits": 8}, distributions=dists,
            values=[DENSE - 0.2 * max(0.0, 0.4 - density), density],
            system_attrs={"constraints": [over]}))
    study.optimize(objective, n_trials=1)           # trial 5: a refinement turn
    child = study.trials[5]
    assert child.user_attrs.get("origin") == "refine"
    assert 1 not in child.user_attrs[REFINED_KEY]    # trial 1 is the infeasible one
