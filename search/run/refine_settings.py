"""The ``search.refine`` config section (plain data: the config reads it without Optuna; the
sampler that does the refinement is ``search.run.refine``)."""
from __future__ import annotations

from dataclasses import dataclass

from search.schema import ConfigError

REFINED_KEY = "refined_between"   # trial attr: [A, B], the trials a refinement bisects


@dataclass(frozen=True)
class RefineSettings:
    """The ``search.refine`` section."""

    # Accuracy levels below the dense model's (absolute: 0.01 = 1 point) where the front is
    # bisected, in turn, e.g. [0.01]; [] (the default) turns refinement off.
    within: tuple[float, ...] = ()
    every: int = 5      # every N-th trial number is a refinement turn (when one is possible)

    def __post_init__(self) -> None:
        for value in self.within:
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not 0.0 <= value < 1.0:
                raise ConfigError(f"search.refine.within must be accuracy drops in [0, 1), "
                                  f"got {value!r}")
        if isinstance(self.every, bool) or not isinstance(self.every, int) or self.every < 2:
            raise ConfigError(f"search.refine.every must be an integer >= 2, got {self.every!r}")

    @property
    def enabled(self) -> bool:
        return bool(self.within)
