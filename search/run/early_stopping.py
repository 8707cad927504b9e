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

from dataclasses import dataclass
from typing import Mapping, Sequence

import optuna
from optuna.trial import TrialState

from search.schema import ConfigError
from trainers.rungs import StopCandidate

# Objectives whose value is known before training (the analytic cost metrics).
KNOWN_BEFORE_TRAINING = ("flops", "flops_dense", "bops", "params_nonzero", "size_bytes",
                         "energy_uj")


@dataclass(frozen=True)
class EarlyStoppingSettings:
    """The ``search.run.early_stopping`` section."""

    # null (default): on whenever the objectives allow it (accuracy + costs known before
    # training); true: on, and an error when they do not; false: off.
    enabled: bool | None = None
    rungs: tuple[int, ...] = (1, 2)    # fine-tune epochs after which accuracy is checked
    margin: float = 0.03               # optimistic accuracy gain still possible after a rung
    # Also learn from finished trials: a candidate's optimistic final accuracy is at least the
    # best final accuracy of a finished trial that looked no better at the same rung.
    learned_bound: bool = True

    def describe(self) -> str:
        """One line for the start of a run: when a candidate stops."""
        learned = (", or the best final accuracy of a finished trial that looked no better"
                   if self.learned_bound else "")
        return (f"early stopping on: a candidate stops after {'/'.join(map(str, self.rungs))} "
                f"fine-tune epoch(s) when its optimistic final accuracy (val accuracy + "
                f"{self.margin:g}{learned}) is dominated (search.early_stopping.enabled: false "
                f"turns it off)")

    def active(self, metrics: Sequence[str]) -> bool:
        """Whether trials with these objectives are stopped early."""
        if self.enabled is None:
            return not unknown_before_training(metrics)
        return self.enabled

    def __post_init__(self) -> None:
        if any(r < 1 for r in self.rungs):
            raise ConfigError(f"search.early_stopping.rungs must be epochs >= 1, got {list(self.rungs)}")
        if not 0.0 <= self.margin <= 1.0:
            raise ConfigError(f"search.early_stopping.margin must be in [0, 1], got {self.margin}")


def unknown_before_training(metrics: Sequence[str]) -> list[str]:
    """The objectives that stop early stopping: all but accuracy must be known before training
    (and accuracy must be one of them)."""
    unknown = [m for m in metrics if m != "accuracy" and m not in KNOWN_BEFORE_TRAINING]
    return unknown if "accuracy" in metrics else unknown + ["(no accuracy)"]


def check_objectives(settings: EarlyStoppingSettings, metrics: Sequence[str]) -> None:
    """Early stopping turned on explicitly needs every objective but accuracy to be known before
    training; left at its default it turns itself off for such objectives."""
    if settings.enabled is not True:
        return
    if unknown_before_training(metrics):
        raise ConfigError("search.early_stopping needs 'accuracy' plus objectives known before "
                          f"training ({list(KNOWN_BEFORE_TRAINING)}), got {list(metrics)}")


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


def dominates(a: Sequence[float], b: Sequence[float], directions: Sequence[str]) -> bool:
    """True when ``a`` is no worse than ``b`` in every objective and better in one."""
    sign = [1.0 if d == "minimize" else -1.0 for d in directions]
    a_min = [s * v for s, v in zip(sign, a)]
    b_min = [s * v for s, v in zip(sign, b)]
    return all(x <= y for x, y in zip(a_min, b_min)) and any(x < y for x, y in zip(a_min, b_min))
