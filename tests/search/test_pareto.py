import itertools

import numpy as np
import optuna

from search.pareto import pareto_front


def brute_force(values, directions):
    signs = np.array([-1 if d == "maximize" else 1 for d in directions])
    points = values * signs
    keep = []
    for i, a in enumerate(points):
        dominated = any(all(b <= a) and any(b < a) for j, b in enumerate(points) if j != i)
        if not dominated:
            keep.append(i)
    return keep


def test_matches_brute_force_on_random_sets():
    rng = np.random.default_rng(0)
    for n, m in itertools.product([1, 5, 40], [1, 2, 3]):
        values = rng.integers(0, 6, size=(n, m)).astype(float)   # ties on purpose
        directions = ["maximize"] + ["minimize"] * (m - 1)
        assert pareto_front(values, directions).tolist() == brute_force(values, directions)


def test_hand_example():
    values = np.array([[0.9, 10.0], [0.8, 5.0], [0.7, 6.0], [0.9, 12.0]])
    assert pareto_front(values, ["maximize", "minimize"]).tolist() == [0, 1]


def test_agrees_with_optuna_best_trials():
    directions = ["maximize", "minimize", "minimize"]
    study = optuna.create_study(directions=directions,
                                sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: [t.suggest_int("a", 0, 5), t.suggest_int("b", 0, 5),
                              t.suggest_float("c", 0, 1)], n_trials=60)
    values = np.array([t.values for t in study.trials])
    ours = {study.trials[i].number for i in pareto_front(values, directions)}
    assert ours == {t.number for t in study.best_trials}


def test_the_progress_front_size_follows_optuna_as_trials_arrive():
    """The progress line's front size is kept up to date trial by trial (not recomputed over the
    whole study), and counts what ``study.best_trials`` counts, ties and all."""
    from search.run.progress import FrontSize

    directions = ["maximize", "minimize", "minimize"]
    study = optuna.create_study(directions=directions,
                                sampler=optuna.samplers.RandomSampler(seed=1))
    front = FrontSize(directions)
    for _ in range(12):
        study.optimize(lambda t: [t.suggest_int("a", 0, 3) / 3, t.suggest_int("b", 0, 4),
                                  t.suggest_int("c", 0, 2)], n_trials=7)
        assert front.size(study.get_trials(deepcopy=False)) == len(study.best_trials)


def test_the_progress_front_size_counts_a_reused_duplicate_once():
    from search.run.progress import FrontSize

    directions = ["maximize", "minimize"]
    study = optuna.create_study(directions=directions)
    for values, attrs in (([0.9, 2.0], {}), ([0.8, 1.0], {}), ([0.9, 2.0], {"duplicate_of": 0})):
        trial = study.ask()
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        study.tell(trial, values)
    assert len(study.best_trials) == 3                 # Optuna counts the reused copy too
    assert FrontSize(directions).size(study.get_trials(deepcopy=False)) == 2
