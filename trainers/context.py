"""Everything a trial needs besides its candidate, built once per study (or per worker)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import torch
from torch import nn

from spaces.layers import LayerInfo
from trainers.costs.energy import EnergyProfile
from trainers.data.bundle import DataBundle
from trainers.training import LossFn, MetricFn, TrainSettings


@dataclass
class EvalContext:
    """Shared, read-only inputs of ``evaluate``.

    ``dense_state`` is the trained dense reference every candidate starts from;
    ``other_params`` counts parameters outside the prunable layers' weights (biases, norms).
    """

    model_factory: Callable[[], nn.Module]
    data: DataBundle
    dense_state: Mapping[str, torch.Tensor]
    layers: Sequence[LayerInfo]
    finetune: TrainSettings
    batch_size: int
    device: torch.device
    profile: EnergyProfile
    other_params: int
    activation_bits: int = 32
    watts_per_core: float = 10.0
    energy_meter: str = "auto"
    loss_fn: LossFn | None = None
    metric_fn: MetricFn | None = None
    extras: dict = field(default_factory=dict)
