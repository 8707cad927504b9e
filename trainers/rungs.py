"""Rungs: look at a candidate's validation accuracy part-way through its fine-tuning, so a search
can stop a candidate that cannot reach the front (see ``search.run.early_stopping``).

The protocol and its exception only (no torch): the hook that measures accuracy during fine-tuning
is ``trainers.schedules.rung_hook``."""
from __future__ import annotations

from typing import Protocol


class RungCheck(Protocol):
    """Called with (epochs done, validation accuracy) after each epoch in ``rungs``."""

    rungs: tuple[int, ...]

    def __call__(self, epoch: int, accuracy: float) -> None: ...


class StopCandidate(Exception):
    """Raised by a rung check: the candidate is not worth training further."""

    def __init__(self, epoch: int, accuracy: float, reason: str):
        super().__init__(reason)
        self.epoch = epoch
        self.accuracy = accuracy
        self.reason = reason
