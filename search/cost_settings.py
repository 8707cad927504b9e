"""The ``cost:`` section of the config: energy profile and meters, and what each trial measures
besides its validation accuracy."""
from __future__ import annotations

import math
from dataclasses import dataclass

from search.schema import ConfigError
from trainers.costs import METER_CHOICES, LatencySettings, load_profile
from trainers.costs.meters import DEFAULT_POWERCAP_ROOT


@dataclass(frozen=True)
class CostSettings:
    """The ``cost:`` section: energy profile, activation width, meters, what each trial measures
    besides its validation accuracy (latency, test accuracy)."""

    energy_profile: str | None = None   # shipped profile name or YAML file; default: horowitz45
    activation_bits: int = 32
    energy_meter: str = "auto"          # auto | nvml | rapl | estimate
    watts_per_core: float = 10.0        # for the 'estimate' meter
    powercap_root: str = DEFAULT_POWERCAP_ROOT   # where the 'rapl' meter looks
    measure_latency: bool = True        # time the exported model of every trial
    measure_test_accuracy: bool = True  # test metric of every trial (reported only; false: skip)
    latency_batch_size: int = 32
    latency_warmup: int = 2
    latency_repeats: int = 10

    def __post_init__(self) -> None:
        if self.activation_bits not in (4, 8, 16, 32):
            raise ConfigError(f"cost.activation_bits must be one of [4, 8, 16, 32], "
                              f"got {self.activation_bits}")
        if not 0 < self.watts_per_core < math.inf:
            raise ConfigError(f"cost.watts_per_core must be a finite number > 0, "
                              f"got {self.watts_per_core}")
        if self.energy_meter not in METER_CHOICES:
            raise ConfigError(f"cost.energy_meter must be one of {list(METER_CHOICES)}, "
                              f"got '{self.energy_meter}'")
        try:
            load_profile(self.energy_profile)
            self.latency_settings()
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc

    def latency_settings(self) -> LatencySettings:
        return LatencySettings(enabled=self.measure_latency, batch_size=self.latency_batch_size,
                               warmup=self.latency_warmup, repeats=self.latency_repeats)
