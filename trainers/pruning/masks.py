"""Masks kept reversible during search (parametrizations); folded in at export."""
from __future__ import annotations

from typing import Mapping

import torch
from torch import nn
from torch.nn.utils import parametrize

from trainers.quantization import fake_quantize


def mask_from_scores(scores: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Zero exactly ``round(sparsity * n)`` lowest-scoring entries (ties broken by position)."""
    n = scores.numel()
    k = int(round(sparsity * n))
    mask = torch.ones(n, dtype=torch.bool, device=scores.device)
    if k > 0:
        order = torch.argsort(scores.reshape(-1), stable=True)
        mask[order[:k]] = False
    return mask.reshape(scores.shape)


class MaskedQuantizedWeight(nn.Module):
    """Parametrization ``w -> fake_quantize(w * mask, bits)``; the mask is a buffer.

    Because the effective weight is recomputed from the mask in every forward pass, pruned weights
    stay exactly zero whatever the optimizer does to the underlying parameter.
    """

    def __init__(self, mask: torch.Tensor, bits: int):
        super().__init__()
        self.register_buffer("mask", mask.to(torch.bool))
        self.bits = int(bits)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return fake_quantize(weight * self.mask, self.bits)


def attach(model: nn.Module, masks: Mapping[str, torch.Tensor], bits: Mapping[str, int]) -> None:
    """Register (or replace) the mask-and-quantize parametrization on each named layer."""
    modules = dict(model.named_modules())
    for name in set(masks) | set(bits):
        module = modules[name]
        weight = module.weight
        mask = masks.get(name)
        if mask is None:
            mask = torch.ones_like(weight, dtype=torch.bool)
        if parametrize.is_parametrized(module, "weight"):
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=False)
        parametrize.register_parametrization(
            module, "weight", MaskedQuantizedWeight(mask.to(weight.device), bits.get(name, 32)))


def current_masks(model: nn.Module) -> dict[str, torch.Tensor]:
    """The masks currently attached, by layer name."""
    found = {}
    for name, module in model.named_modules():
        if parametrize.is_parametrized(module, "weight"):
            for param in module.parametrizations.weight:
                if isinstance(param, MaskedQuantizedWeight):
                    found[name] = param.mask
    return found


def fold(model: nn.Module) -> nn.Module:
    """Make masks and quantization permanent: plain weights, no parametrizations left."""
    for module in model.modules():
        if parametrize.is_parametrized(module, "weight"):
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
    return model
