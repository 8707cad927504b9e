"""An evolutionary sampler in the spirit of EvoPress (ICML 2025), over the whole search space.

EvoPress searches per-layer sparsity with a (1 + lambda) evolution whose mutation is a *level
switch*: one layer one step sparser, another one step denser, so the total stays roughly where it
was. Ours is multi-objective: each new candidate copies a random member of the current Pareto front
of the finished trials and mutates it:

- a level switch between two per-layer sparsity parameters (the same number of grid steps,
  1 to ``max_steps``, each way: a neighbour at about the parent's cost), or, with
  ``shift_probability``, such a move of one numeric parameter alone (a neighbour a few levels
  cheaper or dearer, so the search also walks along the front and past its ends);
- with ``choice_probability``, another choice of one categorical parameter (a layer's bits, the
  criterion, the granularity, ...).

Every value stays inside its Optuna distribution (its ``low``, ``high``, ``step`` and ``log``).
Until ``population_size`` trials are finished (the enqueued dense and baseline candidates count)
and for any parameter the parent lacks, a ``RandomSampler`` with the same seed draws. Stopped
(pruned or screened) and failed trials are never parents; with constraints, only trials within
them are, while any exist. A child equal to an earlier trial is drawn again (a few times), since
a duplicate costs a budget slot. Written here because Optuna has no sampler with these moves
(its NSGA-II mutates a parameter by redrawing it at random, which loses the parent's allocation).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
from optuna.distributions import (BaseDistribution, CategoricalDistribution, FloatDistribution,
                                  IntDistribution)
from optuna.samplers import RandomSampler
from optuna.trial import TrialState

from search.pareto import pareto_front
from search.run.proposing import ProposingSampler
from spaces.candidate import SPARSITY_PREFIX
from spaces.sparsity_range import LOG_DENSITY_PREFIX

if TYPE_CHECKING:
    from optuna.study import Study
    from optuna.trial import FrozenTrial

# Steps across a numeric parameter that has no ``step`` of its own.
CONTINUOUS_STEPS = 20
# Redraws of a child equal to an earlier trial before it is taken anyway.
REDRAWS = 8
_LAYER_PREFIXES = (LOG_DENSITY_PREFIX, SPARSITY_PREFIX)


class EvolutionarySampler(ProposingSampler):
    """Parents from the Pareto front of finished trials; level-switch and choice mutations.

    Args:
        population_size: finished trials before the evolution starts (random draws until then).
        seed: seed of the mutations and of the warm-up sampler; the same seed and the same trials
            give the same proposals.
        shift_probability: chance that the numeric mutation moves one parameter alone instead
            of switching levels between two layers.
        max_steps: a move is 1 to ``max_steps`` grid steps (drawn uniformly; smaller at the
            bounds). 6 reached further than 1 or 3 in ``benchmarks/search_quality.py`` (one step
            of 0.05 in log10 density hardly leaves the baselines in 43 trials; 3 and 6 were
            within noise of each other).
        choice_probability: chance of changing one categorical parameter as well.
        constraints_func: Optuna's ``constraints_func`` (values <= 0 when satisfied).
    """

    def __init__(self, population_size: int = 16, seed: int | None = None,
                 shift_probability: float = 0.5, choice_probability: float = 0.5,
                 max_steps: int = 6,
                 constraints_func: Callable[["FrozenTrial"], Sequence[float]] | None = None):
        if population_size < 1:
            raise ValueError(f"population_size must be >= 1, got {population_size}")
        if max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {max_steps}")
        for name, value in (("shift_probability", shift_probability),
                            ("choice_probability", choice_probability)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        self.population_size = population_size
        self.shift_probability = shift_probability
        self.choice_probability = choice_probability
        self.max_steps = max_steps
        self._constraints_func = constraints_func
        self._rng = np.random.RandomState(seed)
        super().__init__(RandomSampler(seed=seed))   # the warm-up draws; _proposed: parents

    def reseed_rng(self) -> None:
        self._rng.seed()
        super().reseed_rng()

    # --- Optuna's sampler interface
    def infer_relative_search_space(self, study: "Study", trial: "FrozenTrial"
                                    ) -> dict[str, BaseDistribution]:
        """The parent's parameters (none during the warm-up): the parent is chosen here."""
        front = self.parent_pool(study)
        if not front:
            return {}
        parent = front[self._rng.randint(len(front))]
        self._proposed[trial.number] = parent
        return {name: dist for name, dist in parent.distributions.items() if not dist.single()}

    def sample_relative(self, study: "Study", trial: "FrozenTrial",
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        parent = self._proposed.pop(trial.number, None)
        if parent is None or not search_space:
            return {}
        seen = {params_key(t.params) for t in study.get_trials(deepcopy=False)
                if t.number != trial.number and t.state != TrialState.RUNNING}
        child = self.mutate(parent.params, search_space)
        for _ in range(REDRAWS):
            if params_key({**parent.params, **child}) not in seen:
                break
            child = self.mutate(parent.params, search_space)
        return child

    # --- Parents and mutations
    def parent_pool(self, study: "Study") -> list["FrozenTrial"]:
        """The finished trials' Pareto front (one trial per distinct parameter set), or [] while
        fewer than ``population_size`` trials are finished."""
        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        done = [t for t in done if t.values is not None and all(map(math.isfinite, t.values))]
        if len(done) < self.population_size:
            return []
        if self._constraints_func is not None:
            feasible = [t for t in done if all(v <= 0 for v in self._constraints_func(t))]
            done = feasible or done
        directions = [d.name.lower() for d in study.directions]
        front = [done[i] for i in pareto_front(np.array([t.values for t in done]), directions)]
        unique: dict[tuple, "FrozenTrial"] = {}
        for t in front:
            unique.setdefault(params_key(t.params), t)
        return list(unique.values())

    def mutate(self, params: dict[str, Any], space: dict[str, BaseDistribution]
               ) -> dict[str, Any]:
        """A copy of ``params`` (those in ``space``) with one numeric move and, by chance, one
        categorical change; at least one parameter differs whenever any can."""
        child = {name: params[name] for name in space if name in params}
        numeric = [n for n in child if isinstance(space[n], (FloatDistribution, IntDistribution))]
        choices = [n for n in child if isinstance(space[n], CategoricalDistribution)]
        layers = [n for n in numeric if is_layer_sparsity(n)]
        moved = False
        steps = 1 + self._rng.randint(self.max_steps)
        if len(layers) >= 2 and self._rng.rand() >= self.shift_probability:
            moved = self._level_switch(child, layers, space, steps)
        if not moved and numeric:
            moved = self._shift(child, numeric, space, steps)
        if choices and (not moved or self._rng.rand() < self.choice_probability):
            self._change_choice(child, choices, space)
        return child

    def _level_switch(self, child: dict[str, Any], layers: list[str],
                      space: dict[str, BaseDistribution], steps: int) -> bool:
        for size in range(steps, 0, -1):    # the drawn size, smaller ones at the bounds
            ups = [n for n in layers if step_value(child[n], space[n], size) is not None]
            downs = [n for n in layers if step_value(child[n], space[n], -size) is not None]
            pairs = [(up, down) for up in ups for down in downs if up != down]
            if pairs:
                up, down = pairs[self._rng.randint(len(pairs))]
                child[up] = step_value(child[up], space[up], size)
                child[down] = step_value(child[down], space[down], -size)
                return True
        return False

    def _shift(self, child: dict[str, Any], names: list[str],
               space: dict[str, BaseDistribution], steps: int) -> bool:
        for size in range(steps, 0, -1):
            moves = [(n, d) for n in names for d in (size, -size)
                     if step_value(child[n], space[n], d) is not None]
            if moves:
                name, move = moves[self._rng.randint(len(moves))]
                child[name] = step_value(child[name], space[name], move)
                return True
        return False

    def _change_choice(self, child: dict[str, Any], names: list[str],
                       space: dict[str, BaseDistribution]) -> None:
        name = names[self._rng.randint(len(names))]
        others = [c for c in space[name].choices if c != child[name]]
        if others:
            child[name] = others[self._rng.randint(len(others))]


def is_layer_sparsity(name: str) -> bool:
    """A per-layer (or per-group, or per-layer offset) sparsity parameter, not the global one."""
    return not name.startswith("global.") and any(p in name for p in _LAYER_PREFIXES)


def step_value(value: float, dist: BaseDistribution, steps: int) -> float | int | None:
    """``value`` moved ``steps`` steps up (> 0) or down (< 0) inside ``dist``, or None past its
    edge.

    On a stepped distribution the step is its ``step``; a continuous one is cut into
    ``CONTINUOUS_STEPS`` steps (equal in log space when ``log``)."""
    if isinstance(dist, IntDistribution):
        new = int(value) + steps * dist.step
        return new if dist.low <= new <= dist.high else None
    if not isinstance(dist, FloatDistribution):
        return None
    if dist.step is not None:
        count = int(round((dist.high - dist.low) / dist.step))
        index = int(round((value - dist.low) / dist.step)) + steps
        return float(round(dist.low + index * dist.step, 12)) if 0 <= index <= count else None
    if dist.log:
        width = (math.log(dist.high) - math.log(dist.low)) / CONTINUOUS_STEPS
        new = math.exp(math.log(value) + steps * width)
    else:
        new = value + steps * (dist.high - dist.low) / CONTINUOUS_STEPS
    return new if dist.low <= new <= dist.high else None


def params_key(params: dict[str, Any]) -> tuple:
    """A hashable form of a parameter set (floats rounded, so grid values compare equal)."""
    return tuple(sorted((k, round(v, 9) if isinstance(v, float) else v)
                        for k, v in params.items()))
