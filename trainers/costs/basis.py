"""What the analytic cost metrics are computed from: the model's layers as it will run.

A ``CostBasis`` holds the prunable layers (with their dense MACs and activation sizes), the
parameters outside them (biases, norms) and the FLOPs outside them (matrix products and convolutions
of modules we do not prune, e.g. ``Conv1d`` or attention). For unstructured / N:M sparsity the basis
is the dense model's and the candidate's sparsity scales it; for channel pruning it is the basis of
the physically smaller model and no sparsity is applied on top. Pure data: a model's basis is measured
by ``trainers.costs.model_basis.cost_basis``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Union

from spaces.layers import LayerInfo


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
