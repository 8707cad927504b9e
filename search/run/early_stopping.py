"""Early stopping with several objectives: stop a candidate that cannot reach the front.

FLOPs, size and energy of a candidate are known before training; only accuracy needs it. Rung 0
(screening, before any fine-tuning: ``screen``) predicts the final accuracy from the candidate's
figures right after pruning, through a map learned on the study's finished trials
(``search.run.screening``). At each later
rung (after 1, then 2, ... fine-tune epochs) the candidate's optimistic final accuracy (its
validation accuracy plus a ``margin``, or, learned from finished trials, the best final accuracy
of one that was no more accurate at the same rung) is placed with its known costs; if a completed
trial dominates that point, the rest of the training cannot put it on the front, so it stops and
is recorded as PRUNED with the rung and the reason. Optuna's pruners and Ray's schedulers cannot
do this with several objectives.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import optuna
from optuna.trial import TrialState
from trainers.rungs import StopCandidate

from search.pareto import dominates, feasible
from search.run.early_stopping_settings import EarlyStoppingSettings, ScreeningSettings
from search.run.screening import fit_rung0_map, hypervolume_gain, ranked_out
from search.run.study_view import StudyView

GAIN_KEY = "rung0_gain"         # user attr: predicted hypervolume gain at rung 0
SCREENING_NOTE = "rung0_note"   # user attr: whether rung 0 screened the candidate, or why not


class FrontRungCheck:
    """Raises ``StopCandidate`` when (accuracy + margin, known costs) is dominated by a completed
    trial of ``study``."""

    def __init__(self, study: optuna.Study | StudyView, metrics: Sequence[str],
                 directions: Sequence[str], costs: Mapping[str, float],
                 settings: EarlyStoppingSettings, trial: optuna.Trial | None = None):
        """``study``: the study, or the trial's view of it (``StudyView``: read once, not at
        every rung). ``trial``: where each rung's accuracy is recorded (``rung<N>_accuracy``),
        which is what later candidates learn their bound from."""
        self.view = study if isinstance(study, StudyView) else StudyView(study, max_age=0.0)
        self.trial = trial
        self.metrics = list(metrics)
        self.directions = list(directions)
        self.costs = dict(costs)
        self.margin = settings.margin
        self.learned = settings.learned_bound
        self.rungs = tuple(settings.rungs)

    @property
    def metric(self) -> str:
        """The study's selection metric, which the reasons name (read only to give one)."""
        return self.view.user_attr("metric") or "accuracy"

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
        finished = self.view.trials(states=(TrialState.COMPLETE,))
        bound = self.optimistic(epoch, accuracy, finished)
        other = self.dominating(bound, finished)
        if other is not None:
            raise StopCandidate(
                epoch, accuracy,
                f"after {epoch} fine-tune epoch(s) val {self.metric} {accuracy:.4f}, optimistic "
                f"final {bound:.4f}, is dominated by trial {other.number}")

    def screen(self, rung0: Mapping[str, float], settings: ScreeningSettings) -> None:
        """Rung 0, before any fine-tuning: record the figures, and stop the candidate when the
        final accuracy they predict (``search.run.screening``) cannot reach the front."""
        if self.trial is not None:
            for key, value in rung0.items():
                self.trial.set_user_attr(key, float(value))
        finished = self.view.trials(states=(TrialState.COMPLETE,))
        fitted, note = fit_rung0_map(finished, self.metrics.index("accuracy"), settings)
        if self.trial is not None:
            self.trial.set_user_attr(SCREENING_NOTE, note)
        bound = fitted.optimistic(rung0) if fitted is not None else None
        if bound is None:
            return
        seen = float(rung0.get("rung0_accuracy", math.nan))
        other = self.dominating(bound, finished)
        if other is not None:
            raise StopCandidate(
                0, seen, f"screened out before fine-tuning: {fitted.feature} "
                f"{rung0[fitted.feature]:.4f} predicts a final val {self.metric} <= {bound:.4f}, "
                f"dominated by trial {other.number}")
        if settings.fine_tune_share >= 1.0 or self.refinement():
            return
        expected = [fitted.predicted(rung0) if m == "accuracy" else self.costs[m]
                    for m in self.metrics]
        gain = hypervolume_gain(expected, finished, self.metrics, self.directions,
                                self.view.user_attr("dense_reference"))
        recent = [t.user_attrs[GAIN_KEY] for t in self.view.trials()
                  if GAIN_KEY in t.user_attrs][-settings.window:]
        if self.trial is not None:
            self.trial.set_user_attr(GAIN_KEY, gain)
        out, why = ranked_out(gain, recent, settings)
        if out:
            raise StopCandidate(0, seen, f"screened out before fine-tuning: {why}")

    def refinement(self) -> bool:
        """Whether the candidate is a refinement (``search.refine``): it bisects the front where
        users pick a model, not where the hypervolume grows most, so the ranking by predicted
        gain (``fine_tune_share``) leaves it alone; a dominated prediction still screens it out."""
        return self.trial is not None and self.trial.user_attrs.get("origin") == "refine"

    def dominating(self, bound: float, finished: Sequence[optuna.trial.FrozenTrial]
                   ) -> optuna.trial.FrozenTrial | None:
        """A completed trial dominating (``bound`` accuracy, this candidate's known costs); only
        trials within ``search.constraints`` count: the front is theirs."""
        point = [bound if m == "accuracy" else self.costs[m] for m in self.metrics]
        for other in finished:
            if other.values is not None and feasible(other) \
                    and dominates(other.values, point, self.directions):
                return other
        return None


def rung_key(epoch: int) -> str:
    """User attribute holding a trial's validation accuracy after ``epoch`` fine-tune epochs."""
    return f"rung{epoch}_accuracy"
