"""Regularisation-driven pruning: a penalty that drives weights (or whole channels) toward zero
before they are cut.

- ``l1``: strength * sum |w| over the pruned layers' weights (unstructured and n:m granularities).
- ``group_l2``: strength * sum over output channels of ||w_channel||_2 (group lasso; channel
  granularity), which pushes whole channels to zero.
Only layers the candidate prunes are penalised; the schedules switch the penalty off after the
last cut.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

ExtraLoss = Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def l1_penalty(model: nn.Module, layer_names: Sequence[str]) -> torch.Tensor:
    """Sum of |w| over the named layers' (effective) weights."""
    modules = dict(model.named_modules())
    return sum(modules[name].weight.abs().sum() for name in layer_names)


def group_l2_penalty(model: nn.Module, layer_names: Sequence[str]) -> torch.Tensor:
    """Sum over the named layers' output channels of the channel's L2 norm."""
    modules = dict(model.named_modules())
    total = 0.0
    for name in layer_names:
        weight = modules[name].weight
        total = total + weight.reshape(weight.shape[0], -1).norm(p=2, dim=1).sum()
    return total


def penalty_kind(granularity: str) -> str:
    """``group_l2`` for channel pruning, ``l1`` otherwise."""
    return "group_l2" if granularity == "channel" else "l1"


class Penalty:
    """``extra_loss`` term ``strength * penalty``; ``active`` lets a schedule switch it off."""

    def __init__(self, kind: str, strength: float, layer_names: Sequence[str]):
        if kind not in ("l1", "group_l2"):
            raise ValueError(f"penalty kind must be one of ['l1', 'group_l2'], got '{kind}'")
        if strength < 0:
            raise ValueError(f"regularisation strength must be >= 0, got {strength}")
        self.kind = kind
        self.strength = float(strength)
        self.layer_names = list(layer_names)
        self.active = True
        self._fn = l1_penalty if kind == "l1" else group_l2_penalty

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                 logits: torch.Tensor) -> torch.Tensor:
        if not self.active or self.strength == 0.0 or not self.layer_names:
            return logits.new_zeros(())
        return self.strength * self._fn(model, self.layer_names)


def combine(*terms: ExtraLoss | None) -> ExtraLoss | None:
    """One ``extra_loss`` summing the given terms (``None`` entries are skipped)."""
    present = [t for t in terms if t is not None]
    if not present:
        return None

    def total(model, x, y, logits):
        return sum(term(model, x, y, logits) for term in present)

    return total
