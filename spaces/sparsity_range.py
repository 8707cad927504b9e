"""How one layer's sparsity is sampled: bounds, scale (log density or linear) and grid.

Pure arithmetic: ``trial`` is anything with Optuna's ``suggest_float`` / ``suggest_categorical``
(an ``optuna.Trial``, also what Ray Tune's ``OptunaSearch`` passes to a define-by-run function).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Protocol, Sequence

from spaces.candidate import SPARSITY_PREFIX


class TrialLike(Protocol):
    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None,
                      log: bool = False) -> float: ...

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any: ...


SPARSITY_SCALES = ("log_density", "linear")
LOG_DENSITY_PREFIX = "log_density."


@dataclass(frozen=True)
class SparsityRange:
    """Per-layer sparsity bounds and how they are sampled.

    ``scale: log_density`` (default) draws log10 of the density (1 - sparsity) on a grid of
    ``log_step``, so sparsities 0.9, 0.99 and 0.999 are as reachable as 0.5 (uniform sampling in
    [0, 0.99] almost never visits >= 0.98, where the smallest good models of large layers are).
    ``scale: linear`` draws the sparsity itself on a grid of ``step``.
    """

    low: float = 0.0
    high: float = 0.99
    step: float = 0.05
    scale: str = "log_density"
    log_step: float = 0.05

    def __post_init__(self) -> None:
        if not 0.0 <= self.low < 1.0:
            raise ValueError(f"space.sparsity.low must be in [0, 1), got {self.low}")
        if not 0.0 <= self.high < 1.0:
            raise ValueError(f"space.sparsity.high must be in [0, 1), got {self.high}")
        if self.low > self.high:
            raise ValueError(
                f"space.sparsity: low <= high must hold, got low={self.low}, high={self.high}")
        if not 0.0 < self.step <= 1.0:
            raise ValueError(f"space.sparsity.step must be in (0, 1], got {self.step}")
        if self.scale not in SPARSITY_SCALES:
            raise ValueError(f"space.sparsity.scale must be one of {list(SPARSITY_SCALES)}, "
                             f"got '{self.scale}'")
        if not 0.0 < self.log_step <= 1.0:
            raise ValueError(f"space.sparsity.log_step must be in (0, 1], got {self.log_step}")

    def param_name(self, name: str, group: bool = False) -> str:
        """Optuna parameter of a layer (or of a layer group sharing one value)."""
        prefix = LOG_DENSITY_PREFIX if self.scale == "log_density" else SPARSITY_PREFIX
        return ("group_" if group else "") + prefix + name

    def grid(self, low: float, high: float) -> tuple[float, float, float]:
        """(start, stop, step) of the sampled variable for sparsity bounds [low, high]."""
        if self.scale == "linear":
            stop = low + self.step * math.floor((high - low) / self.step + 1e-9)
            return low, round(stop, 10), self.step
        top = math.log10(1.0 - low)
        bottom = top - self.log_step * math.floor((top - math.log10(1.0 - high)) / self.log_step
                                                  + 1e-9)
        return round(bottom, 10), round(top, 10), self.log_step

    def grid_values(self, low: float, high: float) -> list[float]:
        """Every sparsity the grid of [low, high] holds, in the sampled variable's order."""
        start, stop, step = self.grid(low, high)
        if stop <= start:
            return [low]
        return [self.to_sparsity(round(start + k * step, 10))
                for k in range(round((stop - start) / step) + 1)]

    def suggest(self, trial: TrialLike, name: str, low: float, high: float,
                group: bool = False) -> float:
        """Draw one layer's (or group's) sparsity within [low, high] on this range's grid."""
        start, stop, step = self.grid(low, high)
        if stop <= start:
            return low
        value = trial.suggest_float(self.param_name(name, group), start, stop, step=step)
        return self.to_sparsity(value)

    def clamp(self, value: float, low: float, high: float) -> float:
        """The sparsity of sampled-variable ``value`` held inside bounds [low, high] (on the grid)."""
        start, stop, _ = self.grid(low, high)
        return self.to_sparsity(round(min(max(value, start), max(start, stop)), 10))

    def to_sparsity(self, value: float) -> float:
        if self.scale == "linear":
            return round(float(value), 6)
        return round(1.0 - 10.0 ** float(value), 6)

    def snap(self, sparsity: float, low: float, high: float) -> float:
        """The grid value closest to ``sparsity`` (for enqueued hand-made candidates)."""
        start, stop, step = self.grid(low, high)
        if stop <= start:
            return self.to_sparsity(start)
        if self.scale == "linear":
            target = min(max(sparsity, start), stop)
        else:
            target = math.log10(max(1.0 - min(max(sparsity, low), high), 1e-12))
        return round(start + step * round((min(max(target, start), stop) - start) / step), 10)


class FixedTrial:
    """Replays stored parameters through ``suggest`` (missing ones raise a clear error)."""

    def __init__(self, params: Mapping[str, Any]):
        self.params = params

    def _get(self, name: str) -> Any:
        if name not in self.params:
            raise ValueError(f"stored parameters have no value for '{name}'; "
                             "was this study created with a different search space?")
        return self.params[name]

    def suggest_float(self, name, low, high, *, step=None, log=False):
        return float(self._get(name))

    def suggest_categorical(self, name, choices):
        return self._get(name)
