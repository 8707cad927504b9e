"""The study as one trial sees it: its trials read once, re-read only when the copy gets old.

A trial consults the study several times (budget and duplicates at its start, rung 0, every
early-stopping rung); each read of an RDB storage is a query over every trial. One process running
trials one after another changes nothing in between, so a copy read at the trial's start is exact;
with other workers on the same study a copy older than ``max_age`` seconds is read again, so a
rung after a long epoch still sees what the others finished meanwhile.
"""
from __future__ import annotations

import time
from typing import Any, Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

MAX_AGE_S = 2.0   # re-read a copy older than this (a long epoch); short trials reuse theirs
# Study attributes written before the first trial and never again: read once per run, not once
# per trial (a read of every study attribute is a storage query; a stopped trial names the metric).
FIXED_ATTRS = ("metric", "dense_reference")


class StudyView:
    """``study.get_trials`` and ``study.user_attrs`` for one trial, read at most once per
    ``max_age`` seconds."""

    def __init__(self, study: optuna.Study, max_age: float = MAX_AGE_S,
                 fixed: dict[str, Any] | None = None):
        """``fixed``: where the ``FIXED_ATTRS`` found are kept for the next views of the same
        run (one dict per objective)."""
        self.study = study
        self.max_age = max_age
        self._trials: list[FrozenTrial] | None = None
        self._attrs: dict[str, Any] | None = None
        self._fixed = {} if fixed is None else fixed
        self._read_at = -float("inf")

    def _fresh(self) -> None:
        if self._trials is None or time.perf_counter() - self._read_at > self.max_age:
            self._trials = self.study.get_trials(deepcopy=False)
            self._read_at = time.perf_counter()

    def trials(self, states: Sequence[TrialState] | None = None) -> list[FrozenTrial]:
        """The study's trials (of ``states``), as ``study.get_trials(deepcopy=False)`` gives them."""
        self._fresh()
        if states is None:
            return list(self._trials)
        return [t for t in self._trials if t.state in states]

    def user_attr(self, key: str) -> Any:
        """A study user attribute (set before any trial runs: read once)."""
        if key in self._fixed:
            return self._fixed[key]
        if self._attrs is None:
            self._attrs = dict(self.study.user_attrs)
        value = self._attrs.get(key)
        if key in FIXED_ATTRS and value is not None:
            self._fixed[key] = value
        return value
