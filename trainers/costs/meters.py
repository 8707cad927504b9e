"""Training energy meters. Each reports joules and names its source.

Only ``estimate`` exists on machines without counters: process CPU time times a configurable
watts-per-core figure. It is labelled ``estimate`` wherever it is shown.
"""
from __future__ import annotations

import time


class EnergyMeter:
    source = ""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> tuple[float, float]:
        """Return (joules, wall seconds) since ``start``."""
        raise NotImplementedError


class CpuTimeEstimateMeter(EnergyMeter):
    """Process CPU seconds x ``watts_per_core`` (default 10 W: a typical server core under load)."""

    source = "estimate"

    def __init__(self, watts_per_core: float = 10.0):
        self.watts_per_core = watts_per_core

    def start(self) -> None:
        self._cpu = time.process_time()
        self._wall = time.perf_counter()

    def stop(self) -> tuple[float, float]:
        cpu = time.process_time() - self._cpu
        return cpu * self.watts_per_core, time.perf_counter() - self._wall


def make_meter(kind: str = "auto", watts_per_core: float = 10.0) -> EnergyMeter:
    if kind not in ("auto", "estimate"):
        raise ValueError(f"cost.energy_meter must be one of ['auto', 'estimate'], got '{kind}'")
    return CpuTimeEstimateMeter(watts_per_core)
