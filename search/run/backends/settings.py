"""The ``parallel:`` and ``ray:`` config sections: which backend runs the trials, and how.

Plain data (no Ray import): ``search.config`` embeds these in ``ExperimentConfig``. Bad values
raise ``ConfigError`` whether they come from the YAML or a command-line flag (``--workers 0``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from search.run.backends.registry import BACKENDS
from search.schema import ConfigError

BACKEND_NAMES = tuple(BACKENDS)
ADDRESS_PATTERN = re.compile(r"^(auto|ray://[^\s]+|[^\s:/]+:\d{1,5})$")


@dataclass(frozen=True)
class ParallelSettings:
    """``parallel:`` -- ``backend: optuna`` runs ``workers`` processes on this machine against the
    study storage; ``backend: ray`` runs the trials through Ray Tune (see ``ray:``)."""

    backend: str = "optuna"
    workers: int = 1

    def __post_init__(self) -> None:
        if self.backend not in BACKEND_NAMES:
            raise ConfigError(f"parallel.backend must be one of {list(BACKEND_NAMES)}, "
                              f"got '{self.backend}'")
        if self.workers < 1:
            raise ConfigError(f"parallel.workers must be >= 1, got {self.workers}")


@dataclass(frozen=True)
class RaySettings:
    """``ray:`` -- the Ray Tune backend.

    ``address``: ``HOST:PORT`` or ``auto`` joins a running cluster; unset starts a local runtime
    (``num_cpus`` / ``num_gpus`` size it; unset = what the machine has).
    ``cpus_per_trial`` / ``gpus_per_trial``: resources of one trial (fractions allowed).
    ``max_concurrent``: at most this many trials at once (0 = as many as resources allow).
    ``max_failures``: retries of a failing trial (Ray ``FailureConfig``).
    ``results_dir``: Ray's results folder; default ``<study folder>/ray_results``. A multi-node
    cluster needs a path every node can reach (shared file system or a cloud URI).
    """

    address: str | None = None
    num_cpus: int | None = None
    num_gpus: int | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent: int = 0
    max_failures: int = 1
    results_dir: str | None = None

    def __post_init__(self) -> None:
        if self.address is not None and not ADDRESS_PATTERN.match(self.address):
            raise ConfigError(f"ray.address must be HOST:PORT, ray://HOST:PORT or 'auto', "
                              f"got '{self.address}'")
        if not self.cpus_per_trial > 0:
            raise ConfigError(f"ray.cpus_per_trial must be > 0, got {self.cpus_per_trial}")
        if self.gpus_per_trial < 0:
            raise ConfigError(f"ray.gpus_per_trial must be >= 0, got {self.gpus_per_trial}")
        if self.max_concurrent < 0:
            raise ConfigError(f"ray.max_concurrent must be >= 0, got {self.max_concurrent}")
        if self.max_failures < 0:
            raise ConfigError(f"ray.max_failures must be >= 0, got {self.max_failures}")
        for name in ("num_cpus", "num_gpus"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ConfigError(f"ray.{name} must be >= 0, got {value}")
