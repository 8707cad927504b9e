"""Samplers by name: the one registry that ``search.sampler``, ``--sampler`` and the run read.

A sampler is a factory ``(seed, search settings, constraints_func) -> optuna sampler``; adding
one is a function and a line in ``SAMPLERS``. Optuna is imported when a sampler is made, so
reading the names (config validation, ``--help``) stays light.
"""
from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

    from search.config import ExperimentConfig


def _tpe(seed: int, search: Any, constraints: Any) -> "optuna.samplers.BaseSampler":
    import optuna

    return optuna.samplers.TPESampler(seed=seed, multivariate=True, constraints_func=constraints)


def _nsga2(seed: int, search: Any, constraints: Any) -> "optuna.samplers.BaseSampler":
    import optuna

    return optuna.samplers.NSGAIISampler(seed=seed, population_size=search.population_size,
                                         constraints_func=constraints)


def _random(seed: int, search: Any, constraints: Any) -> "optuna.samplers.BaseSampler":
    import optuna

    return optuna.samplers.RandomSampler(seed=seed)


def _gp(seed: int, search: Any, constraints: Any) -> "optuna.samplers.BaseSampler":
    import optuna

    # Optuna's Gaussian-process sampler; with several objectives it maximises log expected
    # hypervolume improvement (logEHVI). Random draws for the first 10 trials.
    return optuna.samplers.GPSampler(seed=seed, constraints_func=constraints)


def _evo(seed: int, search: Any, constraints: Any) -> "optuna.samplers.BaseSampler":
    from search.run.evolutionary import EvolutionarySampler

    return EvolutionarySampler(population_size=search.population_size, seed=seed,
                               constraints_func=constraints)


SAMPLERS: dict[str, Callable[[int, Any, Any], "optuna.samplers.BaseSampler"]] = {
    "nsga2": _nsga2,
    "tpe": _tpe,        # the default: largest hypervolume at 60 trials (benchmarks/README.md)
    "random": _random,
    "gp": _gp,          # Gaussian process, logEHVI with several objectives
    "evo": _evo,        # parents from the front, level-switch mutations (search.run.evolutionary)
}


def make_sampler(config: "ExperimentConfig", worker_index: int = 0, trials_before: int = 0
                 ) -> "optuna.samplers.BaseSampler":
    """The study's sampler, wrapped by the front's refinement when ``search.refine`` gives
    these objectives a level (by default 1 point below dense). Seeded by ``sampler_seed``."""
    limits = config.search.constraints
    seed = sampler_seed(config.seed, worker_index, trials_before)
    with warnings.catch_warnings():
        # Optuna 5 deprecates constraints_func (for removal in v7) in favour of the trial's
        # set_constraint; it is what its samplers read today: nothing for a user to act on.
        warnings.filterwarnings("ignore", message="`constraints_func` has been deprecated",
                                category=FutureWarning)
        sampler = SAMPLERS[config.search.sampler](seed, config.search,
                                                  constraint_values(limits) if limits else None)
    if config.search.refine_levels():
        from search.run.refine import RefiningSampler

        objectives = config.search.objectives
        sampler = RefiningSampler(sampler, objectives.metrics, objectives.directions,
                                  config.search.refine, seed=seed)
    return sampler


def sampler_seed(seed: int, worker_index: int, trials_before: int) -> int:
    """A sampler's seed: ``seed + worker_index`` in a new study (each worker its own: equal
    seeds would make parallel workers draw equal candidates); in a study that already holds
    ``trials_before`` trials (a resume, a worker joining late), a seed mixed from all three, so
    that a resumed run does not draw again the candidates the first run drew from the same
    seed (random draws, TPE's start-up, NSGA-II's first generation), and no two runs or workers
    of one study share a stream. The same study state gives the same seed."""
    if trials_before <= 0:
        return seed + worker_index
    import numpy as np

    return int(np.random.SeedSequence([seed, worker_index, trials_before]).generate_state(1)[0])


def constraint_values(limits: dict[str, float]) -> "Callable[[FrozenTrial], list[float]]":
    """Optuna ``constraints_func``: one value per limit, <= 0 when satisfied."""
    def values(trial: "FrozenTrial") -> list[float]:
        out = []
        for key, limit in limits.items():
            bound, _, metric = key.partition("_")
            value = trial.user_attrs.get(metric)
            if value is None:
                out.append(1.0)
            else:
                out.append(value - limit if bound == "max" else limit - value)
        return out
    return values
