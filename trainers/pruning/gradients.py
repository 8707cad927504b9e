"""Gradient statistics over a few training batches, for data-driven criteria (taylor, snip, movement);
``GradientStats`` also holds the activation statistics of ``trainers.pruning.calibration`` (wanda).

Gradients are taken with respect to the effective weight (masked, fake-quantized): for a
parametrized layer the gradient of the underlying parameter equals it on surviving weights (the
quantizer's gradient is the identity) and is zero on pruned ones, which stay pruned anyway.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import torch
from torch import nn
from torch.nn.utils import parametrize


@dataclass
class GradientStats:
    """Per-layer sums over ``batches`` batches.

    Attributes:
        grad_sum: sum over batches of dL/dw (weight-shaped).
        taylor_abs: sum over batches of |w * dL/dw| (weight-shaped).
        taylor_channel: sum over batches of (sum over each output channel of w * dL/dw)^2.
        input_sq: sum of squares of each input feature (a Linear's input feature, a convolution's
            input channel) over every sample and position (``trainers.pruning.calibration``).
        batches: number of batches summed.
    """

    grad_sum: dict[str, torch.Tensor] = field(default_factory=dict)
    taylor_abs: dict[str, torch.Tensor] = field(default_factory=dict)
    taylor_channel: dict[str, torch.Tensor] = field(default_factory=dict)
    input_sq: dict[str, torch.Tensor] = field(default_factory=dict)
    batches: int = 0


def _trainable_weight(module: nn.Module) -> torch.Tensor:
    if parametrize.is_parametrized(module, "weight"):
        return module.parametrizations.weight.original
    return module.weight


def collect_gradient_stats(model: nn.Module, layer_names: Sequence[str],
                           batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
                           loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
                           ) -> GradientStats:
    """Run forward/backward on each batch (no optimizer step) and sum the statistics.

    The model's parameter gradients are left cleared and its train/eval mode restored.
    """
    loss_fn = loss_fn or nn.functional.cross_entropy
    modules = dict(model.named_modules())
    stats = GradientStats()
    was_training = model.training
    model.train()
    try:
        for x, y in batches:
            model.zero_grad(set_to_none=True)
            loss_fn(model(x), y).backward()
            for name in layer_names:
                module = modules[name]
                param = _trainable_weight(module)
                grad = torch.zeros_like(param) if param.grad is None else param.grad.detach()
                weight = module.weight.detach()
                product = weight * grad
                _add(stats.grad_sum, name, grad)
                _add(stats.taylor_abs, name, product.abs())
                _add(stats.taylor_channel, name,
                     product.reshape(product.shape[0], -1).sum(dim=1).pow(2))
            stats.batches += 1
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    if stats.batches == 0:
        raise ValueError("gradient statistics need at least one batch of training data")
    return stats


def _add(store: dict[str, torch.Tensor], name: str, value: torch.Tensor) -> None:
    store[name] = store[name] + value if name in store else value.clone()
