"""Whether and how inference latency is timed (read by the config without torch)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LatencySettings:
    """Whether and how to time inference (the ``cost.latency_*`` config fields)."""

    enabled: bool = True
    batch_size: int = 32
    warmup: int = 2
    repeats: int = 10

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"cost.latency_batch_size must be >= 1, got {self.batch_size}")
        if self.warmup < 0:
            raise ValueError(f"cost.latency_warmup must be >= 0, got {self.warmup}")
        if self.repeats < 1:
            raise ValueError(f"cost.latency_repeats must be >= 1, got {self.repeats}")
