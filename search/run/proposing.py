"""A sampler that proposes some trials itself and leaves the rest to an inner sampler.

Optuna asks a sampler for a trial's relative search space, then its relative sample, then each
remaining parameter independently. The evolutionary sampler and the refinement both decide in
the first call what a trial will be (a parent or a child), keep it by trial number until the
second call, and let an inner sampler draw everything else; this class is that shared part.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.trial import TrialState

if TYPE_CHECKING:
    from optuna.study import Study
    from optuna.trial import FrozenTrial


class ProposingSampler(BaseSampler):
    """Holds ``inner`` (draws what this sampler does not propose) and ``_proposed`` (what it
    decided for a trial, by trial number, dropped when the trial ends)."""

    def __init__(self, inner: BaseSampler):
        self.inner = inner
        self._proposed: dict[int, Any] = {}

    def sample_independent(self, study: "Study", trial: "FrozenTrial", param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self.inner.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: "Study", trial: "FrozenTrial") -> None:
        self.inner.before_trial(study, trial)

    def after_trial(self, study: "Study", trial: "FrozenTrial", state: TrialState,
                    values: Sequence[float] | None) -> None:
        self._proposed.pop(trial.number, None)
        self.inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.inner.reseed_rng()
