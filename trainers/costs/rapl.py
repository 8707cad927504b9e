"""RAPL energy meter: the Linux powercap ``energy_uj`` counters of the CPU packages (and DRAM).

Layout read (``/sys/class/powercap`` by default, configurable as ``cost.powercap_root``)::

    intel-rapl:0/name                  "package-0"
    intel-rapl:0/energy_uj             microjoules since some point, wraps around
    intel-rapl:0/max_energy_range_uj   value at which it wraps
    intel-rapl:0:1/name                "dram"   (a sub-zone; not part of the package's count)

Counted: every top-level zone named ``package-*`` and every sub-zone named ``dram``; other zones
(``psys`` contains the packages, ``core`` / ``uncore`` are inside them) would double count. AMD CPUs
expose the same ``intel-rapl`` names. A counter that went down wrapped once: the increment is
``end + max_energy_range_uj - start``. A background thread polls every ``poll_seconds`` so that a
counter which would wrap more than once during a long run is read in between (a 262 kJ range wraps
after ~22 minutes at 200 W). Since Linux 5.10 ``energy_uj`` is readable by root only (CVE-2020-8694);
then this meter is unavailable and ``auto`` falls back.
"""
from __future__ import annotations

import re
import threading
from pathlib import Path

from trainers.costs.meter_base import DEFAULT_POWERCAP_ROOT, EnergyMeter, MeterUnavailable

ZONE_PATTERN = re.compile(r"^intel-rapl:\d+(:\d+)?$")


def _zone_counted(zone: Path) -> bool:
    name_file = zone / "name"
    name = name_file.read_text().strip() if name_file.is_file() else ""
    top_level = zone.name.count(":") == 1
    return (top_level and name.startswith("package")) or (not top_level and name == "dram")


def find_zones(root: str | Path = DEFAULT_POWERCAP_ROOT) -> list[Path]:
    """The counted RAPL zones under ``root`` (package and DRAM), each with a readable counter.

    Raises ``MeterUnavailable`` when there are none or they cannot be read.
    """
    root = Path(root)
    if not root.is_dir():
        raise MeterUnavailable(f"no powercap directory at '{root}' (RAPL not exposed here)")
    zones = sorted(p for p in root.iterdir() if ZONE_PATTERN.match(p.name) and _zone_counted(p))
    if not zones:
        raise MeterUnavailable(f"no RAPL package zones under '{root}'")
    for zone in zones:
        try:
            int((zone / "energy_uj").read_text())
            int((zone / "max_energy_range_uj").read_text())
        except PermissionError as exc:
            raise MeterUnavailable(f"'{zone / 'energy_uj'}' is not readable by this user (root only "
                                   f"since Linux 5.10)") from exc
        except (OSError, ValueError) as exc:
            raise MeterUnavailable(f"cannot read the RAPL counter in '{zone}': {exc}") from exc
    return zones


def counter_increase(start: int, end: int, max_range: int) -> int:
    """Increase of a counter from ``start`` to ``end`` that wraps at ``max_range`` (at most once)."""
    return end - start if end >= start else end + max_range - start


class RaplMeter(EnergyMeter):
    """Sum of the package (and DRAM) energy counters over the measured block, in joules."""

    source = "rapl"

    def __init__(self, root: str | Path = DEFAULT_POWERCAP_ROOT, poll_seconds: float = 30.0):
        self.zones = find_zones(root)
        self.max_range = [int((z / "max_energy_range_uj").read_text()) for z in self.zones]
        self.poll_seconds = poll_seconds
        self._lock = threading.Lock()
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None

    def _read(self) -> list[int]:
        return [int((zone / "energy_uj").read_text()) for zone in self.zones]

    def poll(self) -> None:
        """Add the increase since the last reading (call more often than the counter wraps)."""
        with self._lock:
            now = self._read()
            self._total_uj += sum(counter_increase(a, b, m)
                                  for a, b, m in zip(self._last, now, self.max_range))
            self._last = now

    def _begin(self) -> None:
        self._total_uj = 0
        self._last = self._read()
        self._stop_event.clear()
        if self.poll_seconds and self.poll_seconds > 0:
            self._thread = threading.Thread(target=self._poll_loop, name="rapl-poll", daemon=True)
            self._thread.start()

    def _poll_loop(self) -> None:
        while not self._stop_event.wait(self.poll_seconds):
            try:
                self.poll()
            except (OSError, ValueError):
                continue        # a failed read is retried at the next poll or at stop()

    def _end(self) -> float:
        self._stop_event.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.poll()
        return self._total_uj / 1e6
