"""The ``search.refine`` config section (plain data: the config reads it without Optuna; the
sampler that does the refinement is ``search.run.refine``)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from search.schema import ConfigError

REFINED_KEY = "refined_between"   # trial attr: [A, B], the trials a refinement bisects


DEFAULT_WITHIN = (0.01,)   # where users mostly pick: 1 point below the dense accuracy


@dataclass(frozen=True)
class RefineSettings:
    """The ``search.refine`` section."""

    # Accuracy levels below the dense model's (absolute: 0.01 = 1 point) where the front is
    # bisected, in turn, e.g. [0.01, 0.02]; [] turns refinement off; null (the default):
    # ``DEFAULT_WITHIN`` when the objectives allow it (accuracy and a minimised cost), else off.
    within: tuple[float, ...] | None = None
    every: int = 5      # every N-th trial number is a refinement turn (when one is possible)

    def __post_init__(self) -> None:
        for value in self.within or ():
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not 0.0 <= value < 1.0:
                raise ConfigError(f"search.refine.within must be accuracy drops in [0, 1), "
                                  f"got {value!r}")
        if isinstance(self.every, bool) or not isinstance(self.every, int) or self.every < 2:
            raise ConfigError(f"search.refine.every must be an integer >= 2, got {self.every!r}")

    def levels(self, metrics: Sequence[str], directions: Sequence[str]) -> tuple[float, ...]:
        """The levels refined for these objectives (empty: refinement off)."""
        if self.within is not None:
            return tuple(self.within)
        return DEFAULT_WITHIN if refinable(metrics, directions) else ()

    def describe(self, levels: Sequence[float]) -> str:
        """One line for the start of a run."""
        points = " then ".join(f"{100 * v:g}" for v in levels)
        return (f"refinement on: one trial in {self.every} bisects the front where it crosses "
                f"{points} point(s) below the dense val accuracy (search.refine.within: [] "
                f"turns it off)")


def refinable(metrics: Sequence[str], directions: Sequence[str]) -> bool:
    """Refinement needs accuracy and a minimised cost among the objectives."""
    return "accuracy" in metrics and "minimize" in directions
