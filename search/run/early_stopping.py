"""Early stopping with several objectives: stop a candidate that cannot reach the front.

FLOPs, size and energy of a candidate are known before training; only accuracy needs it. At each
rung (after 1, then 2, ... fine-tune epochs) the candidate's optimistic final accuracy (its
validation accuracy plus a ``margin``, or, learned from finished trials, the best final accuracy
of one that was no more accurate at the same rung) is placed with its known costs; if a completed
trial dominates that point, the rest of the training cannot put it on the front, so it stops and
is recorded as PRUNED with the rung and the reason. Optuna's pruners and Ray's schedulers cannot
do this with several objectives.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import optuna
from optuna.trial import TrialState
from trainers.rungs import StopCandidate

from search.pareto import dominates
from search.run.early_stopping_settings import EarlyStoppingSettings


class FrontRungCheck:
    """Raises ``StopCandidate`` when (accuracy + margin, known costs) is dominated by a completed
    trial of ``study``."""

    def __init__(self, study: optuna.Study, metrics: Sequence[str], directions: Sequence[str],
                 costs: Mapping[str, float], settings: EarlyStoppingSettings,
                 trial: optuna.Trial | None = None):
        """``trial``: where each rung's accuracy is recorded (``rung<N>_accuracy``), which is
        what later candidates learn their bound from."""
        self.study = study
        self.trial = trial
        self.metrics = list(metrics)
        self.directions = list(directions)
        self.costs = dict(costs)
        self.margin = settings.margin
        self.learned = settings.learned_bound
        self.rungs = tuple(settings.rungs)

    def optimistic(self, epoch: int, accuracy: float,
                   finished: Sequence[optuna.trial.FrozenTrial]) -> float:
        """The best final accuracy this candidate may still reach: its accuracy + margin, or
        (learned bound) the best final accuracy of a finished trial that was no more accurate at
        this rung, whichever is higher."""
        bound = accuracy + self.margin
        if not self.learned:
            return bound
        index = self.metrics.index("accuracy")
        for other in finished:
            seen = other.user_attrs.get(rung_key(epoch))
            if seen is not None and seen <= accuracy + 1e-12 and other.values is not None:
                bound = max(bound, other.values[index])
        return bound

    def __call__(self, epoch: int, accuracy: float) -> None:
        if self.trial is not None:
            self.trial.set_user_attr(rung_key(epoch), float(accuracy))
        finished = self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        bound = self.optimistic(epoch, accuracy, finished)
        point = [bound if m == "accuracy" else self.costs[m] for m in self.metrics]
        for other in finished:
            if other.values is not None and dominates(other.values, point, self.directions):
                raise StopCandidate(
                    epoch, accuracy,
                    f"after {epoch} fine-tune epoch(s) val accuracy {accuracy:.4f}, optimistic "
                    f"final {bound:.4f}, is dominated by trial {other.number}")


def rung_key(epoch: int) -> str:
    """User attribute holding a trial's validation accuracy after ``epoch`` fine-tune epochs."""
    return f"rung{epoch}_accuracy"
