"""Refinement: bisect the front where it crosses "within X of the dense accuracy".

The model a user takes from a study is most often the smallest one that is nearly as accurate as
the dense model. Where the front crosses that level, a sampler's draws and the hand-made baselines
leave a gap: the cheapest accurate-enough trial A, and the next cheaper trial B (the most accurate
of those cheaper than A, so below the level). Every ``every``-th trial the ``RefiningSampler``
proposes the candidate half-way between them: each numeric parameter both share (the per-layer
log densities) at the midpoint of its grid (rounded toward B), every other parameter (bits,
criterion, granularity) as A has it. Whether the child lands above or below the level, it
becomes the new A or B, so a few trials narrow the gap to one grid step. Once a midpoint is a
trial already run, the next pairs are tried: A's choices with B's, then the next few Bs, then
the next cheapest As. When every such midpoint has been run, the turn moves density between two
of A's layers instead (EvoPress's level switch: one layer 1 or 2 grid steps denser, another as
many sparser), since the next smaller model at the level is often another allocation rather than
a point on the line between two. When nothing reaches the level yet, or the study has no dense
reference, the wrapped sampler draws as usual; trials enqueued with fixed parameters (dense,
baselines) are never refined.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
from optuna.distributions import BaseDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from search.pareto import feasible
from search.run.evolutionary import is_layer_sparsity, params_key, step_value
from search.run.proposing import ProposingSampler
from search.run.refine_settings import REFINED_KEY, RefineSettings

if TYPE_CHECKING:
    from optuna.samplers import BaseSampler
    from optuna.study import Study
    from optuna.trial import FrozenTrial

PAIRS_TRIED = 3                   # cheaper neighbours B tried before the gap counts as closed


class RefiningSampler(ProposingSampler):
    """Wraps ``base``: on refinement turns proposes the bisection of the front's gap at each
    level of ``settings.within``; otherwise (and whenever there is nothing to bisect) ``base``
    draws."""

    def __init__(self, base: BaseSampler, metrics: Sequence[str], directions: Sequence[str],
                 settings: RefineSettings, seed: int | None = None):
        """``seed``: of the level switches tried once the gaps are closed (with the trial's
        number: the same trials give the same proposals)."""
        costs = [i for i, d in enumerate(directions) if d == "minimize"]
        if "accuracy" not in metrics or not costs:
            raise ValueError(f"refinement needs accuracy and a minimised cost among the "
                             f"objectives, got {list(metrics)}")
        super().__init__(base)       # _proposed: the children of this sampler's turns
        self.seed = 0 if seed is None else seed
        self.settings = settings
        self.levels = settings.levels(metrics, directions)
        self.accuracy = list(metrics).index("accuracy")
        self.cost = costs[0]         # the first minimised objective: "cheaper" means lower here

    # --- Optuna's sampler interface
    def infer_relative_search_space(self, study: "Study", trial: "FrozenTrial"
                                    ) -> dict[str, BaseDistribution]:
        if self._is_turn(trial):
            found = self.proposal(study, trial.number)
            if found is not None:
                child, parent, parents = found
                self._proposed[trial.number] = child
                record_origin(study, trial, parents)
                return {n: d for n, d in parent.distributions.items() if n in child}
        return self.inner.infer_relative_search_space(study, trial)

    def sample_relative(self, study: "Study", trial: "FrozenTrial",
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        child = self._proposed.pop(trial.number, None)
        if child is not None:
            return child
        return self.inner.sample_relative(study, trial, search_space)

    # --- The bisection
    def _is_turn(self, trial: "FrozenTrial") -> bool:
        return (trial.number % self.settings.every == self.settings.every - 1
                and "fixed_params" not in trial.system_attrs)

    def proposal(self, study: "Study", number: int
                 ) -> tuple[dict[str, Any], "FrozenTrial", tuple[int, ...]] | None:
        """(child parameters, the parent A whose distributions they use, (A, B) for a
        bisection or (A,) for a level switch), or None."""
        dense = (study.user_attrs.get("dense_reference") or {}).get("accuracy")
        if dense is None:
            return None
        trials = study.get_trials(deepcopy=False)
        done = [t for t in trials if t.state == TrialState.COMPLETE and t.values is not None
                and all(map(math.isfinite, t.values)) and t.params
                and feasible(t)]   # within search.constraints: the front users pick from
        seen = {params_key(free_params(t)) for t in trials if t.params}
        levels = self.levels
        turn = number // self.settings.every
        order = [dense - levels[(turn + k) % len(levels)] for k in range(len(levels))]
        for level in order:     # this turn's level first, then the others
            child = self._bisect(done, seen, level)
            if child is not None:
                return child
        rng = np.random.RandomState((self.seed + number) % 2 ** 32)
        for level in order:     # every gap closed: move density between A's layers
            child = self._switch(done, seen, level, rng)
            if child is not None:
                return child
        return None

    def _switch(self, done: list["FrozenTrial"], seen: set, level: float,
                rng: np.random.RandomState
                ) -> tuple[dict[str, Any], "FrozenTrial", tuple[int, ...]] | None:
        """A level switch of A (one layer 1 or 2 grid steps denser, another as many sparser:
        about A's cost, another allocation), the first not run yet in a random order."""
        for a in self._cheapest_at(done, level):
            dists = {n: d for n, d in a.distributions.items() if not d.single()}
            layers = sorted(n for n in dists if is_layer_sparsity(n))
            moves = [(up, down, k) for k in (1, 2) for up in layers for down in layers
                     if up != down]
            for index in rng.permutation(len(moves)):
                up, down, k = moves[index]
                raised = step_value(a.params[up], dists[up], k)
                lowered = step_value(a.params[down], dists[down], -k)
                if raised is None or lowered is None:
                    continue
                child = {n: a.params[n] for n in dists}
                child[up], child[down] = raised, lowered
                if params_key(child) not in seen:
                    return child, a, (a.number,)
        return None

    def _cheapest_at(self, done: list["FrozenTrial"], level: float) -> list["FrozenTrial"]:
        """The ``PAIRS_TRIED`` cheapest trials at or above ``level`` (the As, best first)."""
        acc, cost = self.accuracy, self.cost
        return sorted((t for t in done if t.values[acc] >= level),
                      key=lambda t: (t.values[cost], -t.values[acc], t.number))[:PAIRS_TRIED]

    def _bisect(self, done: list["FrozenTrial"], seen: set, level: float
                ) -> tuple[dict[str, Any], "FrozenTrial", tuple[int, int]] | None:
        acc, cost = self.accuracy, self.cost
        for a in self._cheapest_at(done, level):
            cheaper = sorted((t for t in done if t.values[cost] < a.values[cost]),
                             key=lambda t: (-t.values[acc], t.values[cost], t.number))
            for b in cheaper[:PAIRS_TRIED]:
                for choices in (a, b):
                    child = midpoint(a, b, choices)
                    if child and params_key(child) not in seen:
                        return child, a, (a.number, b.number)
        return None


def free_params(trial: "FrozenTrial") -> dict[str, Any]:
    """A trial's parameters that can take more than one value (what a child is made of)."""
    return {name: value for name, value in trial.params.items()
            if not trial.distributions[name].single()}


def record_origin(study: "Study", trial: "FrozenTrial", parents: tuple[int, ...]) -> None:
    """``origin: refine`` and its parents ([A, B] bisected, or [A] switched), in the storage (a
    worker in another process reads them there) and in the trial's cached copy (which the
    objective reads)."""
    for key, value in (("origin", "refine"), (REFINED_KEY, list(parents))):
        study._storage.set_trial_user_attr(trial._trial_id, key, value)
        trial.user_attrs[key] = value


def midpoint(a: "FrozenTrial", b: "FrozenTrial", choices: "FrozenTrial") -> dict[str, Any]:
    """A's parameters with every numeric one that B shares (same distribution) moved half-way to
    B's value on its grid, rounded toward B; every other one as ``choices`` (A or B) has it,
    where it has one."""
    child: dict[str, Any] = {}
    for name, dist in a.distributions.items():
        if dist.single():
            continue
        value = a.params[name]
        if name in b.params and b.distributions.get(name) == dist \
                and isinstance(dist, (FloatDistribution, IntDistribution)):
            value = _halfway(value, b.params[name], dist)
        elif name in choices.params and choices.distributions.get(name) == dist:
            value = choices.params[name]
        child[name] = value
    return child


def _halfway(a: float, b: float, dist: FloatDistribution | IntDistribution) -> float | int:
    """The midpoint of ``a`` and ``b`` on ``dist``'s grid, rounded toward ``b`` (a continuous
    distribution: the plain midpoint, in log space when ``log``)."""
    if isinstance(dist, FloatDistribution) and dist.step is None:
        if dist.log:
            return float(math.exp((math.log(a) + math.log(b)) / 2))
        return float((a + b) / 2)
    steps = int(round((b - a) / dist.step))
    half = -(-abs(steps) // 2)                  # ceil(|steps| / 2): rounded toward b
    return step_value(a, dist, half if steps >= 0 else -half)
