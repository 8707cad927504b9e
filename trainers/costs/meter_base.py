"""The energy-meter interface: ``start`` / ``stop`` around a block of work, and what it returns.

Every meter (``nvml``, ``rapl``, ``estimate``; the registry is ``trainers.costs.meters``) subclasses
``EnergyMeter``; a counter that cannot be read here raises ``MeterUnavailable``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

DEFAULT_WATTS_PER_CORE = 10.0
DEFAULT_POWERCAP_ROOT = "/sys/class/powercap"


class MeterUnavailable(RuntimeError):
    """The requested counter cannot be read on this machine."""


@dataclass(frozen=True)
class EnergyReading:
    """Energy and time of one measured block; ``source`` says how the joules were obtained."""

    joules: float
    seconds: float
    source: str

    def __iter__(self):
        """Unpacks as ``joules, seconds`` (the meter's first interface returned that pair)."""
        return iter((self.joules, self.seconds))


class EnergyMeter:
    """Measures one block of work: ``start()``, then ``stop()`` returns an ``EnergyReading``."""

    source = ""

    def start(self) -> None:
        self._wall = time.perf_counter()
        self._begin()

    def stop(self) -> EnergyReading:
        joules = self._end()
        return EnergyReading(joules, time.perf_counter() - self._wall, self.source)

    def _begin(self) -> None:
        raise NotImplementedError

    def _end(self) -> float:
        raise NotImplementedError
