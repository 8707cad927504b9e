"""Where a study stands: trials by state, budget left, time spent, front size, hypervolume."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import optuna
from optuna.trial import TrialState

from search.decide.hypervolume import study_hypervolume
from search.decide.tables import front_of, trials_frame, within_constraints
from search.run.budget import is_surplus


@dataclass(frozen=True)
class StudyStatus:
    """A snapshot of one study (all counts are trials)."""

    study: str
    complete: int
    pruned: int
    running: int
    waiting: int
    failed: int
    budget: int
    budget_left: int
    trial_seconds: float          # sum of finished trials' durations (compute spent)
    wall_seconds: float           # first trial start to last trial end (elapsed)
    front_size: int
    hypervolume: float
    best_accuracy: float | None
    finetune_epochs: int = 0      # fine-tune epochs actually trained (stopped trials: up to the rung)
    duplicates: int = 0           # trials that reused a finished twin's result (no training)
    screened: int = 0             # pruned at rung 0: screened out before any fine-tuning
    budget_epochs: int | None = None   # the study's budget in fine-tune epochs (None: none)
    metric: str = "accuracy"      # what the accuracy objective measures (the study's metric)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def study_status(study: optuna.Study, metrics: Sequence[str], directions: Sequence[str],
                 budget: int, dense: Mapping[str, float] | None = None,
                 budget_epochs: int | None = None) -> StudyStatus:
    """Count trials by state and measure the front of ``study`` (read-only)."""
    # Budget-surplus trials (made by a worker after the budget was taken, never run) are left
    # out, as in trials.csv: they are no failure.
    trials = [t for t in study.get_trials(deepcopy=False) if not is_surplus(t)]
    count = {state: sum(1 for t in trials if t.state == state) for state in TrialState}
    finished = count[TrialState.COMPLETE] + count[TrialState.PRUNED]
    durations = [(t.datetime_complete - t.datetime_start).total_seconds() for t in trials
                 if t.datetime_start and t.datetime_complete]
    starts = [t.datetime_start for t in trials if t.datetime_start]
    ends = [t.datetime_complete for t in trials if t.datetime_complete]
    wall = (max(ends) - min(starts)).total_seconds() if starts and ends else 0.0
    frame = trials_frame(study)
    front_size = len(front_of(frame, metrics, directions))
    best = None
    if "accuracy" in frame:    # among the trials that meet search.constraints, as the front
        kept = within_constraints(frame)
        accuracy = kept.loc[kept["state"] == "COMPLETE", "accuracy"].dropna()
        best = float(accuracy.max()) if len(accuracy) else None
    return StudyStatus(
        study=study.study_name,
        complete=count[TrialState.COMPLETE], pruned=count[TrialState.PRUNED],
        running=count[TrialState.RUNNING], waiting=count[TrialState.WAITING],
        failed=count[TrialState.FAIL],
        budget=budget, budget_left=max(0, budget - finished),
        trial_seconds=float(sum(durations)), wall_seconds=float(max(wall, 0.0)),
        front_size=front_size,
        hypervolume=study_hypervolume(frame, metrics, directions, dense),
        best_accuracy=best, finetune_epochs=_column_sum(frame, "finetune_epochs_done"),
        duplicates=int(frame["duplicate_of"].notna().sum()) if "duplicate_of" in frame else 0,
        screened=sum(1 for t in trials if t.state == TrialState.PRUNED
                     and t.user_attrs.get("pruned_rung") == 0),
        budget_epochs=budget_epochs, metric=study.user_attrs.get("metric") or "accuracy")


def _column_sum(frame: Any, column: str) -> int:
    return int(frame[column].fillna(0).sum()) if column in frame else 0


def trial_counts(status: StudyStatus) -> str:
    """``3 complete, 0 running, ...``: the trials by state, as status and the report say it."""
    return (f"{status.complete} complete, {status.running} running, {status.failed} failed, "
            f"{status.pruned} pruned, {status.waiting} waiting")


def format_status(status: StudyStatus) -> str:
    """A few aligned lines for the terminal."""
    best = "-" if status.best_accuracy is None else f"{status.best_accuracy:.4f}"
    lines = [
        ("study", status.study),
        ("trials", trial_counts(status)),
        ("budget", f"{status.budget} trials, {status.budget_left} left" + (
            "" if status.budget_epochs is None else
            f"; {status.budget_epochs} fine-tune epochs, "
            f"{max(0, status.budget_epochs - status.finetune_epochs)} left")),
        ("time", f"{status.trial_seconds:.1f} s in trials, {status.wall_seconds:.1f} s elapsed"),
        ("training", f"{status.finetune_epochs} fine-tune epochs; {status.screened} candidates "
                     f"screened out before fine-tuning, {status.pruned - status.screened} "
                     f"stopped early, {status.duplicates} duplicates reused untrained"),
        ("front", f"{status.front_size} trials"),
        ("hypervolume", f"{status.hypervolume:.4f} (normalised; reference: accuracy 0, "
                        f"costs 1.1 x dense)"),
        ("best val acc" if status.metric == "accuracy" else f"best val {status.metric}", best),
    ]
    width = max(len(k) for k, _ in lines)
    return "\n".join(f"{key.ljust(width)}  {value}" for key, value in lines)
