"""The ``global_offset`` parametrization: one global sparsity plus a bounded offset per layer.

Instead of one free value per layer (``per_layer``), the sampler draws a global value and, for each
searched layer (or layer group), an offset in ``[-max_offset, +max_offset]``; a layer's sparsity is
the sum, clamped to the layer's own bounds. Both live in the units of the sampled variable (log10 of
the density on the ``log_density`` scale, so ``max_offset: 1.0`` (default) lets a layer keep up to
10x more or fewer weights than the global density; the sparsity itself on the ``linear`` scale), on the same
grid as ``per_layer``. With ``max_offset: 0`` it is a single global sparsity.

Parameters: ``global.<scale>`` and ``offset.<per-layer name>`` (e.g. ``offset.log_density.conv1``).
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Mapping, Sequence

from spaces.sparsity_range import SparsityRange, TrialLike

# One sampled unit: (layer or group name, is a group, low, high sparsity bounds).
Unit = tuple[str, bool, float, float]


@dataclass(frozen=True)
class GlobalOffset:
    rng: SparsityRange
    max_offset: float

    @property
    def global_param(self) -> str:
        return "global." + self.rng.param_name("").rstrip(".")

    def offset_param(self, name: str, group: bool) -> str:
        return "offset." + self.rng.param_name(name, group)

    def _reach(self, step: float) -> float:
        return round(step * math.floor(self.max_offset / step + 1e-9), 10)

    def suggest(self, trial: TrialLike, units: Sequence[Unit]) -> dict[str, float]:
        """Sparsity of every unit (by name) drawn as global value + offset."""
        start, stop, step = self.rng.grid(self.rng.low, self.rng.high)
        base = (trial.suggest_float(self.global_param, start, stop, step=step)
                if stop > start else start)
        reach = self._reach(step)
        values = {}
        for name, group, low, high in units:
            offset = (trial.suggest_float(self.offset_param(name, group), -reach, reach, step=step)
                      if reach > 0 else 0.0)
            values[name] = self.rng.clamp(base + offset, low, high)
        return values

    def to_params(self, units: Sequence[Unit], sparsity: Mapping[str, float]) -> dict[str, float]:
        """Parameters that come closest to ``sparsity`` (by unit name): the global value is the
        median of the units' values, each offset the rest, cut to ``max_offset``."""
        start, stop, step = self.rng.grid(self.rng.low, self.rng.high)
        targets = {name: self.rng.snap(sparsity.get(name, 0.0), low, high)
                   for name, _, low, high in units}
        middle = statistics.median(targets.values()) if targets else start
        base = self.rng.snap(self.rng.to_sparsity(middle), self.rng.low, self.rng.high)
        params: dict[str, float] = {}
        if stop > start:
            params[self.global_param] = base
        reach = self._reach(step)
        if reach > 0:
            for name, group, _, _ in units:
                offset = step * round((targets[name] - base) / step)
                params[self.offset_param(name, group)] = round(min(max(offset, -reach), reach), 10)
        return params
