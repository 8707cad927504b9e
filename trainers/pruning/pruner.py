"""Apply a candidate's criterion and granularity to a model, once or step by step."""
from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import nn

from spaces.candidate import Candidate
from trainers.pruning.calibration import collect_activation_stats
from trainers.pruning.criteria import get_criterion
from trainers.pruning.gradients import GradientStats, collect_gradient_stats
from trainers.pruning.granularity import NM, Channel, PruneMasks, Unstructured, check_granularity
from trainers.pruning.masks import set_masks
from trainers.pruning.settings import PruningSettings
from trainers.pruning.structured import ChannelCoupling

Batches = Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]]


class Pruner:
    """Scores a model's layers with the candidate's criterion and masks them at its granularity.

    Args:
        candidate: sparsity per layer, bits, criterion, granularity, seed.
        input_shape: one sample's shape (needed for channel granularity: dependency tracing).
        settings: fixed pruning settings (N:M block size, ...).
        batches: returns training batches for data-driven criteria (taylor, snip, movement, wanda).
        coupling: a prebuilt ``ChannelCoupling`` of this architecture (built when missing).
        loss_fn: the task loss, for gradient statistics.
    """

    def __init__(self, candidate: Candidate, *, input_shape: tuple[int, ...] | None = None,
                 settings: PruningSettings | None = None, batches: Batches | None = None,
                 coupling: ChannelCoupling | None = None,
                 loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None):
        check_granularity(candidate.granularity)
        self.candidate = candidate
        self.criterion = get_criterion(candidate.criterion)
        if candidate.granularity not in self.criterion.granularities:
            raise ValueError(f"criterion '{candidate.criterion}' works with granularities "
                             f"{list(self.criterion.granularities)}, got '{candidate.granularity}'")
        self.input_shape = input_shape
        self.settings = settings or PruningSettings()
        self.batches = batches
        self.coupling = coupling
        self.loss_fn = loss_fn
        self.last: PruneMasks | None = None

    def step(self, model: nn.Module, fraction: float = 1.0) -> PruneMasks:
        """Prune to ``fraction`` of each layer's target sparsity; masks only ever grow."""
        masks = self.compute(model, fraction)
        self.apply(model, masks)
        return masks

    def compute(self, model: nn.Module, fraction: float = 1.0) -> PruneMasks:
        """The masks of ``step`` without attaching them (e.g. to shrink the model instead)."""
        sparsity = {n: s * fraction for n, s in self.candidate.sparsity.items()}
        pruned = {n: s for n, s in sparsity.items() if s > 0}
        masks = PruneMasks()
        if pruned:
            modules = dict(model.named_modules())
            weights = {name: modules[name].weight.detach() for name in pruned}
            stats = self._stats(model, list(pruned)) if self.criterion.needs_data else None
            masks = self._granularity(model).masks(weights, pruned, self.criterion,
                                                   seed=self.candidate.seed, stats=stats,
                                                   previous=self.last)
        self.last = masks
        return masks

    def apply(self, model: nn.Module, masks: PruneMasks) -> None:
        """Attach or update masks; every layer with bits gets its quantizer (all-ones mask)."""
        modules = dict(model.named_modules())
        names = set(self.candidate.bits) | set(self.candidate.sparsity)
        full = {name: masks.weights.get(name, torch.ones_like(modules[name].weight, dtype=torch.bool))
                for name in names}
        full.update(masks.weights)
        set_masks(model, full, masks.params, bits=self.candidate.bits)

    def _granularity(self, model: nn.Module):
        name = self.candidate.granularity
        if name == "unstructured":
            return Unstructured()
        if name == "n:m":
            return NM(self.settings.nm_block)
        if self.coupling is None:
            if self.input_shape is None:
                raise ValueError("channel granularity needs the input shape to trace the model")
            device = next(model.parameters()).device
            self.coupling = ChannelCoupling(model, torch.zeros((1, *self.input_shape), device=device))
        return Channel(self.coupling, model)

    def _stats(self, model: nn.Module, names: list[str]) -> GradientStats:
        if self.batches is None:
            raise ValueError(f"criterion '{self.candidate.criterion}' needs training batches")
        if self.criterion.needs_activations:
            return collect_activation_stats(model, names, self.batches())
        return collect_gradient_stats(model, names, self.batches(), self.loss_fn)


def prune_model(model: nn.Module, candidate: Candidate, **kwargs) -> PruneMasks:
    """One-shot: score, mask at the candidate's sparsity and attach bit-widths (see ``Pruner``)."""
    return Pruner(candidate, **kwargs).step(model)


