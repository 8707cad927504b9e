"""Everything a trial needs besides its candidate, built once per study (or per worker)."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Mapping, Sequence

import torch
from torch import nn

from spaces.layers import LayerInfo
from trainers.costs.basis import CostBasis
from trainers.costs.energy import EnergyProfile
from trainers.costs.latency_settings import LatencySettings
from trainers.costs.meter_base import DEFAULT_POWERCAP_ROOT
from trainers.data.bundle import DataBundle
from trainers.pruning.settings import PruningSettings
from trainers.train_settings import TrainSettings
from trainers.training import LossFn, MetricFn


# ``extras`` entries that are plain caches of measured values (worth shipping to workers).
PORTABLE_EXTRAS = ("latency_ms", "forward_flops", "dense_training_cost")


@dataclass
class EvalContext:
    """Shared, read-only inputs of ``trainers.trial.evaluate_candidate``.

    ``dense_state`` is the trained dense reference every candidate starts from;
    ``other_params`` counts parameters outside the prunable layers' weights (biases, norms);
    ``other_flops`` the FLOPs per sample outside them, of which ``free_flops`` are weight-free
    products reading and writing ``free_elems`` activations (see ``trainers.costs.basis``).
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
    other_flops: int = 0
    powercap_root: str = DEFAULT_POWERCAP_ROOT
    latency: LatencySettings = field(default_factory=LatencySettings)
    measure_test: bool = True      # the test metric of every trial (False: skipped, reported only)
    loss_fn: LossFn | None = None
    metric_fn: MetricFn | None = None
    extras: dict = field(default_factory=dict)
    # Pruning methods: fixed settings, and the dense training settings that ``during_training``
    # trains from scratch with (None: the fine-tune settings).
    pruning: PruningSettings = field(default_factory=PruningSettings)
    dense_train: TrainSettings | None = None
    free_flops: int = 0
    free_elems: int = 0

    def portable(self) -> "EvalContext":
        """A copy for other processes (pickled once): the caches of measured values kept, the
        objects rebuilt on demand (channel coupling, distillation teacher) left out."""
        return replace(self, extras={k: v for k, v in self.extras.items() if k in PORTABLE_EXTRAS})

    @property
    def cost_basis(self) -> CostBasis:
        """The dense model's layers and the rest: what the analytic costs scale."""
        return CostBasis(tuple(self.layers), self.other_params, self.other_flops,
                         self.free_flops, self.free_elems)
