"""What the analytic cost metrics are computed from: the model's layers as it will run.

A ``CostBasis`` holds the prunable layers (with their dense MACs and activation sizes), the
parameters outside them (biases, norms) and the FLOPs outside them (matrix products and convolutions
of modules we do not prune, e.g. ``Conv1d``, and the weight-free products of attention). Of those,
``free_flops`` are products between activations (Q K^T, attention x V): they have no weight, so
their multiplications run at the activation width and they read and write ``free_elems``
activation elements. For unstructured / N:M sparsity the basis
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
    """Prunable layers plus the parameters and FLOPs (per sample) outside them; ``free_flops``
    (part of ``other_flops``) and ``free_elems`` describe the weight-free products."""

    layers: tuple[LayerInfo, ...]
    other_params: int = 0
    other_flops: int = 0
    free_flops: int = 0
    free_elems: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        if min(self.other_params, self.other_flops, self.free_flops, self.free_elems) < 0:
            raise ValueError(f"other_params, other_flops, free_flops and free_elems must be >= 0, "
                             f"got {self.other_params}, {self.other_flops}, {self.free_flops} and "
                             f"{self.free_elems}")
        if self.free_flops > self.other_flops:
            raise ValueError(f"free_flops ({self.free_flops}) are part of other_flops "
                             f"({self.other_flops}) and cannot exceed them")

    @property
    def other_macs(self) -> float:
        """Multiply-accumulates outside the prunable layers (FLOPs / 2)."""
        return self.other_flops / 2

    @property
    def free_macs(self) -> float:
        """Multiply-accumulates of the weight-free products (FLOPs / 2)."""
        return self.free_flops / 2


# What the cost functions accept: a basis, or a bare list of layers (nothing outside them).
BasisLike = Union[CostBasis, Sequence[LayerInfo]]


def as_basis(value: BasisLike) -> CostBasis:
    """A ``CostBasis`` as is, or one made of a bare list of layers (nothing outside them)."""
    return value if isinstance(value, CostBasis) else CostBasis(tuple(value))


def kept_weights(layer: LayerInfo, sparsity: float) -> int:
    """Weights that survive ``sparsity``: masks zero exactly ``round(sparsity * params)`` of them."""
    return layer.params - int(round(sparsity * layer.params))
