"""What the analytic cost metrics are computed from: the model's layers as it will run.

A ``CostBasis`` holds the prunable layers (with their dense MACs and activation sizes), the
parameters outside them (biases, norms) and the FLOPs outside them (matrix products and convolutions
of modules we do not prune, e.g. ``Conv1d`` or attention). For unstructured / N:M sparsity the basis
is the dense model's and the candidate's sparsity scales it; for channel pruning it is the basis of
the physically smaller model and no sparsity is applied on top.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Union

import torch
from torch import nn

from spaces.layers import LayerInfo
from trainers.discovery import discover_layers
from trainers.reference import count_other_params


@dataclass(frozen=True)
class CostBasis:
    """Prunable layers plus the parameters and FLOPs (per sample) outside them."""

    layers: tuple[LayerInfo, ...]
    other_params: int = 0
    other_flops: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        if self.other_params < 0 or self.other_flops < 0:
            raise ValueError(f"other_params and other_flops must be >= 0, got "
                             f"{self.other_params} and {self.other_flops}")

    @property
    def other_macs(self) -> float:
        """Multiply-accumulates outside the prunable layers (FLOPs / 2)."""
        return self.other_flops / 2


# What the cost functions accept: a basis, or a bare list of layers (nothing outside them).
BasisLike = Union[CostBasis, Sequence[LayerInfo]]


def as_basis(value: BasisLike) -> CostBasis:
    """A ``CostBasis`` as is, or one made of a bare list of layers (nothing outside them)."""
    return value if isinstance(value, CostBasis) else CostBasis(tuple(value))


def kept_weights(layer: LayerInfo, sparsity: float) -> int:
    """Weights that survive ``sparsity``: masks zero exactly ``round(sparsity * params)`` of them."""
    return layer.params - int(round(sparsity * layer.params))


def other_flops_of(model: nn.Module, input_shape: Sequence[int],
                   layers: Sequence[LayerInfo]) -> int:
    """FLOPs per sample that ``torch.utils.flop_counter`` counts outside the prunable layers."""
    from trainers.costs.flops import FLOPS_PER_MAC, count_flops

    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    total = count_flops(model, torch.zeros((1, *input_shape), device=device))
    prunable = FLOPS_PER_MAC * sum(layer.macs for layer in layers)
    if total < prunable:
        raise RuntimeError(f"FlopCounterMode counted {total} FLOPs but the prunable layers alone "
                           f"have {prunable}: the layer discovery and the counter disagree")
    return total - prunable


def cost_basis(model: nn.Module, input_shape: Sequence[int]) -> CostBasis:
    """Discover the prunable layers of ``model`` and everything outside them, for one sample.

    ``model`` must be a plain module (no mask parametrizations attached): fold masks first.
    """
    layers = discover_layers(model, tuple(input_shape))
    return CostBasis(layers=tuple(layers),
                     other_params=count_other_params(model, {layer.name for layer in layers}),
                     other_flops=other_flops_of(model, input_shape, layers))
