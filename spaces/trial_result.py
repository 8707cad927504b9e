"""What every trial reports, whatever the backend."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from spaces.candidate import Candidate

STATUSES = ("complete", "failed", "pruned", "invalid")


@dataclass(frozen=True)
class TrialResult:
    """Metrics of one evaluated candidate.

    ``metrics`` holds numbers only (accuracy, flops, energy_uj, ...); ``info`` holds labels such as
    the energy source or a failure reason.
    """

    candidate: Candidate
    metrics: Mapping[str, float]
    status: str = "complete"
    info: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {list(STATUSES)}, got '{self.status}'")
