"""Pick constraints, derived from the metric registry (``trainers.costs.metrics``).

Every metric that may be an objective has one bound: ``max_<name>`` when it is minimised,
``min_<name>`` when it is maximised (``max_flops``, ``min_accuracy``, ``max_latency_ms``, ...), a
``PickSettings`` keyword and a command-line flag (``--max-flops``). A metric given in other units
than it is recorded in names its bound after them: size is recorded in bytes, bounded in KB
(``max_size_kb``). No torch, no pandas: the command-line parser reads this module.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

from search.schema import ConfigError
from trainers.costs.metrics import MAXIMIZE, METRICS, objective_metrics

if TYPE_CHECKING:
    import pandas as pd

# What ``min_accuracy`` bounds: the measured validation accuracy, or the lower end of its 95%
# binomial interval (``search.decide.noise``), which a lucky draw of the split cannot pass.
ACCURACY_BOUNDS = ("point", "lower")
# Selection metrics (``trainers.selection_metrics``) whose values lie in [0, 1]: a bound on the
# accuracy column of their studies must too. A custom metric (a negative loss, a score out of 100)
# takes any finite bound.
FRACTION_METRICS = ("accuracy", "top5", "f1_macro")


@dataclass(frozen=True)
class Constraint:
    """``metric <= limit`` (bound ``max``) or ``metric >= limit`` (bound ``min``)."""

    metric: str
    bound: str
    limit: float
    label: str            # as the user wrote it, e.g. "--max-size-kb 20"
    shown_as: str = ""    # name in messages, e.g. "size_kb" (default: the metric)
    scale: float = 1.0    # display unit: a value is shown as value / scale

    def holds(self, values: "pd.Series") -> "pd.Series":
        if self.bound == "max":
            return values <= self.limit
        return values >= self.limit

    def violation(self, values: "pd.Series") -> "pd.Series":
        """Relative amount by which each value misses the limit (0 when met)."""
        limit = abs(self.limit) or 1.0
        if self.bound == "max":
            return ((values - self.limit) / limit).clip(lower=0.0)
        return ((self.limit - values) / limit).clip(lower=0.0)

    def describe(self, value: float) -> str:
        op = "<=" if self.bound == "max" else ">="
        return (f"{self.shown_as or self.metric} {_num(value / self.scale)} {op} "
                f"{_num(self.limit / self.scale)}")


def _num(value: float) -> str:
    return f"{value:.4f}" if abs(value) < 10 else f"{value:.4g}"


@dataclass(frozen=True)
class Bound:
    """The one bound a metric of the registry may be given (see the module docstring)."""

    metric: str
    side: str                               # "max" | "min"
    name: str                               # the metric, or its unit-named form (size_kb)
    scale: float                            # a bound value is this many recorded units
    limits: tuple[float, float] | None      # valid bound values (None: > 0)

    @property
    def keyword(self) -> str:
        return f"{self.side}_{self.name}"

    @property
    def flag(self) -> str:
        return "--" + self.keyword.replace("_", "-")

    @property
    def help(self) -> str:
        info = METRICS[self.metric]
        unit = info.unit if self.scale == 1 else f"in units of {self.scale:g} {info.unit}"
        valid = f"{self.limits[0]:g}..{self.limits[1]:g}" if self.limits else ""
        notes = ", ".join(n for n in (unit, valid) if n)
        return (f"{'at most' if self.side == 'max' else 'at least'}: {info.meaning}"
                + (f" [{notes}]" if notes else ""))

    def check(self, value: float, in_limits: bool = True) -> None:
        """Refuse a bound value outside the metric's valid range (``in_limits=False``: only a
        number that is not finite, for a range that depends on the study's metric)."""
        if not math.isfinite(value):
            raise ConfigError(f"{self.keyword} must be a finite number, got {value}")
        if self.limits is not None and not in_limits:
            return
        if self.limits is None:
            if not value > 0:
                raise ConfigError(f"{self.keyword} must be > 0, got {value}")
        elif not self.limits[0] <= value <= self.limits[1]:
            raise ConfigError(f"{self.keyword} must be in [{self.limits[0]:g}, "
                              f"{self.limits[1]:g}], got {value}")

    def constraint(self, value: float) -> Constraint:
        return Constraint(self.metric, self.side, value * self.scale, f"{self.flag} {value:g}",
                          "" if self.name == self.metric else self.name, self.scale)


def pick_bounds() -> dict[str, Bound]:
    """Keyword -> bound, one per metric that may be an objective, in the registry's order."""
    found = {}
    for metric in objective_metrics():
        info = METRICS[metric]
        bound = Bound(metric, "min" if info.direction == MAXIMIZE else "max",
                      info.bound or metric, info.bound_scale, info.limits)
        found[bound.keyword] = bound
    return found


@dataclass(frozen=True, init=False)
class PickSettings:
    """Constraints and preference (the ``pick`` options of the CLI and the API).

    ``PickSettings(max_flops=2e6, min_accuracy=0.95, knee=True)``: one keyword per bound of
    ``pick_bounds()`` (``settings.max_flops`` reads it back, ``None`` when not given); or the
    bounds as one mapping, ``PickSettings({"max_flops": 2e6})``. Bounds keep the order given:
    messages list them as the user wrote them. ``accuracy_bound="lower"`` makes ``min_accuracy``
    bound the lower end of the accuracy's 95% interval instead of the accuracy itself.
    ``reevaluated=True`` reads each trial's re-evaluated accuracy (``search.decide.reevaluate``)
    instead of the search's own, and leaves out the trials without one.
    """

    bounds: Mapping[str, float]
    knee: bool
    prefer: str | None
    accuracy_bound: str
    reevaluated: bool

    def __init__(self, bounds: Mapping[str, float | None] | None = None, *, knee: bool = False,
                 prefer: str | None = None, accuracy_bound: str = "point",
                 reevaluated: bool = False, **limits: float | None) -> None:
        known = pick_bounds()
        given = {**(bounds or {}), **limits}
        unknown = [k for k in given if k not in known]
        if unknown:
            raise TypeError(f"PickSettings got unknown bound(s) {unknown}; the bounds are "
                            f"{list(known)}")
        values = {k: v for k, v in given.items() if v is not None}
        for keyword, value in values.items():
            known[keyword].check(value, in_limits=known[keyword].metric != "accuracy")
        if knee and prefer:
            raise ConfigError(f"choose either knee or prefer, got knee=True and prefer='{prefer}'")
        if accuracy_bound not in ACCURACY_BOUNDS:
            raise ConfigError(f"accuracy_bound must be one of {list(ACCURACY_BOUNDS)}, "
                              f"got '{accuracy_bound}'")
        if accuracy_bound == "lower" and "min_accuracy" not in values:
            raise ConfigError("accuracy_bound 'lower' applies to min_accuracy (--min-accuracy), "
                              "which was not given")
        object.__setattr__(self, "bounds", values)
        object.__setattr__(self, "knee", knee)
        object.__setattr__(self, "prefer", prefer)
        object.__setattr__(self, "accuracy_bound", accuracy_bound)
        object.__setattr__(self, "reevaluated", bool(reevaluated))

    def __getattr__(self, name: str) -> Any:
        if name in pick_bounds():
            return self.bounds.get(name)
        raise AttributeError(f"'PickSettings' object has no attribute '{name}'")

    def __hash__(self) -> int:
        return hash((tuple(self.bounds.items()), self.knee, self.prefer, self.accuracy_bound,
                     self.reevaluated))

    def check_metric(self, metric: str) -> None:
        """Refuse a bound on the accuracy column outside [0, 1] when the study's selection
        ``metric`` is a fraction (``FRACTION_METRICS``); a custom metric takes any finite one."""
        if metric in FRACTION_METRICS:
            known = pick_bounds()
            for keyword, value in self.bounds.items():
                known[keyword].check(value)

    def constraints(self) -> list[Constraint]:
        known = pick_bounds()
        return [known[keyword].constraint(value) for keyword, value in self.bounds.items()]

    @property
    def any(self) -> bool:
        """Whether these settings ask for a pick (``--reevaluated`` alone does: the most
        accurate trial by its re-evaluated accuracy)."""
        return bool(self.bounds) or self.knee or bool(self.prefer) or self.reevaluated
