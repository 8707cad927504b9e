"""Progress of a run: one line per ended trial (every backend), budget and failure stops."""
from __future__ import annotations

import time
from collections import Counter
from typing import Callable, Sequence

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from search.config import ExperimentConfig
from search.decide.tables import write_tables
from search.pareto import dominated_by, dominated_rows, feasible, to_minimization
from search.run.budget import (FINISHED_STATES, budget_open, epochs_open, epochs_spent,
                               is_surplus)
from search.run.early_stopping import SCREENING_NOTE
from search.run.refine_settings import REFINED_KEY
from search.run.stop_request import raise_if_requested
from search.run.study import count_finished
from trainers.costs.metrics import column_name



TABLES_EVERY_S = 30.0   # trials.csv and pareto.csv rewritten this often during a run


class PeriodicTables:
    """Rewrite the study's trials.csv and pareto.csv at most every ``TABLES_EVERY_S`` during a
    run (every backend's progress callback calls it after a trial): something to look at while
    it runs, and after a ``kill -9``."""

    def __init__(self, config: ExperimentConfig):
        objectives = config.search.objectives
        self.where = (config.study_dir, objectives.metrics, objectives.directions)
        self.written_at = time.perf_counter()

    def __call__(self, study: optuna.Study) -> None:
        if time.perf_counter() - self.written_at >= TABLES_EVERY_S:
            self.written_at = time.perf_counter()
            write_tables(study, *self.where)


class StudyStopped(RuntimeError):
    """The study stopped before its budget (too many consecutive failures)."""


class BudgetAndProgress:
    """Optuna callback: progress lines, stop at the budget, stop after N consecutive failures.

    Invalid candidates (rejected before training) cost nothing: they neither count towards the
    budget nor as failures, but 10 x ``max_consecutive_failures`` of them in a row stop the study
    too (the space then yields almost nothing trainable).
    """

    def __init__(self, config: ExperimentConfig, log: Callable[[str], None]):
        self.config = config
        self.log = log
        self.failures = 0
        self.invalid = 0
        self.reasons: Counter[str] = Counter()
        self.started = time.perf_counter()
        self.stop_reason: str | None = None
        self.front = FrontSize(config.search.objectives.directions)
        self.screening = ""
        self.said_epochs = False
        self.tables = PeriodicTables(config)

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        budget = self.config.search.n_trials
        limit = self.config.search.max_consecutive_failures
        trials = study.get_trials(deepcopy=False)   # read once for all of the below
        done = sum(1 for t in trials if t.state in FINISHED_STATES)
        reason = str(trial.user_attrs.get("fail_reason", "unknown"))
        if is_surplus(trial):
            if not budget_open(study, budget, trials):
                study.stop()    # others hold the rest of the budget
            elif not self.epochs_left(trials):
                self.stop_at_epoch_budget(study, trials, done)
            return
        if trial.state == TrialState.FAIL and trial.user_attrs.get("invalid"):
            self.invalid += 1
        elif trial.state == TrialState.FAIL:
            self.failures += 1
            self.invalid = 0
            self.reasons[reason.split(":")[0]] += 1
        else:
            self.failures = 0
            self.invalid = 0
        self.log(progress_line(study, trial, done, budget, self.started,
                               self.front.size(trials), self.epochs(trials)))
        self.tables(study)
        note = trial.user_attrs.get(SCREENING_NOTE)
        kind = note.split(" (")[0].split(":")[0] if note else None   # waits / screens / says little
        if kind and kind != self.screening:   # screening changed its state: say so
            self.screening = kind
            self.log(f"  {note}")
        if self.failures >= limit:
            self.stop_reason = (f"{self.failures} consecutive trials failed "
                                f"(search.max_consecutive_failures: {limit}); last reason: {reason}")
        elif self.invalid >= 10 * limit:
            self.stop_reason = (f"{self.invalid} consecutive candidates were invalid "
                                f"(10 x search.max_consecutive_failures); last: {reason}")
        raise_if_requested()    # a Ctrl-C that Python swallowed during the trial ends the run
        if self.stop_reason:
            study.stop()
        elif done >= budget or not budget_open(study, budget, trials):
            study.stop()
        elif not self.epochs_left(trials):
            self.stop_at_epoch_budget(study, trials, done)

    def epochs_left(self, trials: Sequence[FrozenTrial]) -> bool:
        """Whether the epoch budget (if any) still affords a trial's fine-tune."""
        return epochs_open(trials, self.config.search.budget_epochs, self.config.reserve_epochs())

    def stop_at_epoch_budget(self, study: optuna.Study, trials: Sequence[FrozenTrial],
                             done: int) -> None:
        """Stop the study, saying once that ``search.budget_epochs`` is what ended it."""
        if not self.said_epochs:
            self.said_epochs = True
            self.log(f"fine-tune epoch budget reached: {self.epochs(trials)} epochs spent or held "
                     f"by running trials (search.budget_epochs), {done}/"
                     f"{self.config.search.n_trials} trials finished; the study ends here (raise "
                     f"search.budget_epochs or --budget-epochs and run again to go on)")
        study.stop()

    def epochs(self, trials: Sequence[FrozenTrial]) -> str | None:
        """``spent/budget`` fine-tune epochs, when the study has an epoch budget."""
        budget = self.config.search.budget_epochs
        return None if budget is None else f"{epochs_spent(trials)}/{budget}"

    def summary(self, study: optuna.Study) -> str:
        """One line: why the study stopped, how far it got, failures by kind."""
        done = count_finished(study)
        kinds = ", ".join(f"{k} x{n}" for k, n in self.reasons.most_common())
        return (f"study '{self.config.study}' stopped: {self.stop_reason}; "
                f"{done}/{self.config.search.n_trials} trials finished"
                f"{'; failures this run: ' + kinds if kinds else ''}; "
                f"fix the cause and run the same command again to resume (a fix in the code, "
                f"data or environment resumes this study; a changed setting such as "
                f"finetune.lr makes a different study: give it another --study name)")


class FrontSize:
    """How many completed trials are on the Pareto front (as ``study.best_trials`` counts them:
    feasible ones only, ties included; a trial that reused an earlier one's result, marked
    ``duplicate_of``, is that model again and not counted, as in ``pareto.csv``), kept up to
    date from the trials each call adds: the same cost at trial 1,000 as at trial 10."""

    def __init__(self, directions: Sequence[str]):
        self.directions = list(directions)
        self.front = np.zeros((0, len(self.directions)))
        self.seen: set[int] = set()

    def size(self, trials: Sequence[FrozenTrial]) -> int:
        for trial in trials:
            if trial.state != TrialState.COMPLETE or trial.number in self.seen:
                continue
            self.seen.add(trial.number)
            if trial.values is None or "duplicate_of" in trial.user_attrs or not feasible(trial):
                continue
            point = to_minimization([trial.values], self.directions)[0]
            if dominated_by(self.front, point).any():
                continue
            self.front = np.vstack([self.front[~dominated_rows(self.front, point)], point])
        return len(self.front)


def progress_line(study: optuna.Study, trial: FrozenTrial, done: int, budget: int,
                  started: float, front_size: int | None = None,
                  epochs: str | None = None) -> str:
    """The line every backend prints when a trial ends: ``[done/budget] trial N ...`` with its
    figures (complete), the early-stopping reason (pruned), or why it was not trained or failed.
    ``front_size``: counted by the caller already (else read from the study); ``epochs``:
    ``spent/budget`` fine-tune epochs of a study with an epoch budget."""
    head = f"[{done}/{budget}{f' | {epochs} epochs' if epochs else ''}] trial {trial.number}"
    parents = trial.user_attrs.get(REFINED_KEY)
    if trial.user_attrs.get("origin") == "refine" and parents:   # search.refine's proposal
        head += f" (refines {'/'.join(map(str, parents))})"
    reason = str(trial.user_attrs.get("fail_reason", "unknown"))
    if trial.state == TrialState.FAIL and trial.user_attrs.get("invalid"):
        return f"{head} INVALID (not trained): {reason}"
    if trial.state == TrialState.FAIL:
        return f"{head} FAILED: {reason}"
    if trial.state == TrialState.PRUNED:
        why = str(trial.user_attrs.get("pruned_reason", ""))
        return f"{head} {why}" if trial.user_attrs.get("pruned_rung") == 0 else \
            f"{head} stopped early: {why}"
    return (f"{head}: {trial_figures(trial.user_attrs, study.user_attrs.get('metric'))}"
            f" | front size {len(study.best_trials) if front_size is None else front_size}"
            f" | {time.perf_counter() - started:.0f}s")


def trial_figures(attrs: dict, metric: str | None = None) -> str:
    """The figures of a finished trial in a progress line, named after the study's metric."""
    label = column_name("accuracy", selection=metric or "accuracy")     # val_acc, val_f1_macro
    return (f"{label}={attrs.get('accuracy', 0):.4f} MFLOPs={attrs.get('flops', 0) / 1e6:.3f}"
            f" energy_uJ(est)={attrs.get('energy_uj', 0):.3f}")
