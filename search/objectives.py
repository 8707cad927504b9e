"""Objectives: which trial metrics the study optimises, and in which direction."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from search.pareto import MAXIMIZE, MINIMIZE
from search.schema import ConfigError
from trainers.costs.metrics import objective_metrics

__all__ = ["DIRECTIONS", "Objectives", "objective_metrics", "short_direction"]

# Config words (``max`` / ``min``, or Optuna's) -> Optuna's direction words.
DIRECTIONS = {"max": MAXIMIZE, "maximize": MAXIMIZE, "min": MINIMIZE, "minimize": MINIMIZE}


@dataclass(frozen=True)
class Objectives:
    """Ordered (metric, direction) pairs; YAML form ``{accuracy: max, flops: min}``."""

    items: tuple[tuple[str, str], ...] = (("accuracy", MAXIMIZE), ("flops", MINIMIZE),
                                          ("energy_uj", MINIMIZE))

    def __post_init__(self) -> None:
        if not self.items:
            raise ConfigError("search.objectives must name at least one metric, got {}")
        for metric, direction in self.items:
            if metric not in objective_metrics():
                raise ConfigError(f"search.objectives: metric must be one of "
                                  f"{objective_metrics()}, got '{metric}'")
            if direction not in (MAXIMIZE, MINIMIZE):
                raise ConfigError(f"search.objectives.{metric}: direction must be 'max' or 'min', "
                                  f"got '{direction}'")

    @property
    def metrics(self) -> list[str]:
        return [m for m, _ in self.items]

    @property
    def directions(self) -> list[str]:
        return [d for _, d in self.items]

    @classmethod
    def from_config_value(cls, value: Any, path: str) -> "Objectives":
        if not isinstance(value, dict) or not value:
            raise ConfigError(f"field '{path}' must be a mapping of metric to min/max, e.g. "
                              f"{{accuracy: max, flops: min}}, got {value!r}")
        items = []
        for metric, direction in value.items():
            if str(direction) not in DIRECTIONS:
                raise ConfigError(f"{path}.{metric}: direction must be 'max' or 'min', "
                                  f"got '{direction}'")
            items.append((str(metric), DIRECTIONS[str(direction)]))
        return cls(tuple(items))

    def to_config_value(self) -> dict[str, str]:
        return {m: short_direction(d) for m, d in self.items}


def short_direction(direction: str) -> str:
    """``max`` / ``min``: the config's (and Ray Tune's ``mode``) word for an Optuna direction."""
    return "max" if direction == MAXIMIZE else "min"
