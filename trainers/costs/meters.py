"""Training-energy meters: joules and wall seconds of a block of work, and where they come from.

Three sources, one small interface (``start`` / ``stop``), a registry by name:

- ``nvml``: the GPU's total-energy counter (NVIDIA driver, via nvidia-ml-py) -- measured, whole GPU;
- ``rapl``: the CPU packages' Linux powercap ``energy_uj`` counters -- measured, whole package;
- ``estimate``: process CPU seconds x a watts-per-core figure -- an estimate, labelled as one.

``auto`` picks nvml when training on a CUDA device and NVML answers, then rapl when its counters
are readable, else estimate. Counters measure the whole device, so other work running at the same
time is included (run one trial per device for clean numbers).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from trainers.costs.meter_base import (DEFAULT_POWERCAP_ROOT, DEFAULT_WATTS_PER_CORE,
                                       EnergyMeter, MeterUnavailable)

if TYPE_CHECKING:
    import torch


class CpuTimeEstimateMeter(EnergyMeter):
    """Process CPU seconds (all threads) x ``watts_per_core``: an estimate, not a measurement.

    The default 10 W per busy core is a typical figure for a server core under load (a 200 W,
    20-core package); set ``cost.watts_per_core`` for your machine. GPU energy is not included.
    """

    source = "estimate"

    def __init__(self, watts_per_core: float = DEFAULT_WATTS_PER_CORE):
        if not watts_per_core > 0:
            raise ValueError(f"watts_per_core must be > 0, got {watts_per_core}")
        self.watts_per_core = watts_per_core

    def _begin(self) -> None:
        self._cpu = time.process_time()

    def _end(self) -> float:
        return (time.process_time() - self._cpu) * self.watts_per_core


@dataclass(frozen=True)
class MeterOptions:
    """What the meters may need: the training device and the counters' locations."""

    device: torch.device | str = "cpu"
    watts_per_core: float = DEFAULT_WATTS_PER_CORE
    powercap_root: str = DEFAULT_POWERCAP_ROOT

    @property
    def device_type(self) -> str:
        """``cpu``, ``cuda``, ``mps`` (read from the name: this module needs no torch)."""
        return str(self.device).split(":")[0]


def _nvml(options: MeterOptions) -> EnergyMeter:
    from trainers.costs.nvml import NvmlMeter
    return NvmlMeter.for_device(options.device)


def _rapl(options: MeterOptions) -> EnergyMeter:
    from trainers.costs.rapl import RaplMeter
    return RaplMeter(options.powercap_root)


def _estimate(options: MeterOptions) -> EnergyMeter:
    return CpuTimeEstimateMeter(options.watts_per_core)


METERS: dict[str, Callable[[MeterOptions], EnergyMeter]] = {
    "nvml": _nvml,
    "rapl": _rapl,
    "estimate": _estimate,
}
METER_CHOICES = ("auto", *METERS)


def make_meter(kind: str = "auto", watts_per_core: float = DEFAULT_WATTS_PER_CORE, *,
               device: torch.device | str = "cpu",
               powercap_root: str = DEFAULT_POWERCAP_ROOT) -> EnergyMeter:
    """The named meter; ``auto`` = nvml on CUDA devices, then rapl if readable, else estimate.

    A named meter that cannot work here raises ``MeterUnavailable`` saying why.
    """
    options = MeterOptions(device, watts_per_core, powercap_root)
    if kind not in METER_CHOICES:
        raise ValueError(f"cost.energy_meter must be one of {list(METER_CHOICES)}, got '{kind}'")
    if kind != "auto":
        return METERS[kind](options)
    order = (["nvml"] if options.device_type == "cuda" else []) + ["rapl"]
    for name in order:
        try:
            return METERS[name](options)
        except MeterUnavailable:
            continue
    return _estimate(options)
