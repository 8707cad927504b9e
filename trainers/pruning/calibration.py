"""Input-activation statistics over a few calibration batches, for activation-aware criteria
(wanda).

Each prunable layer's input is seen where its weight enters ``F.linear`` / ``F.conv2d``
(``trainers.weight_calls``), so layers whose weights are used functionally (Swin's ``qkv``) are
measured too. Forward passes only, in eval mode, no gradients.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import torch
from torch import nn
from torch.nn.utils import parametrize

from trainers.discovery import PRUNABLE
from trainers.pruning.gradients import GradientStats
from trainers.weight_calls import WeightCalls, layer_weights


@torch.no_grad()
def collect_activation_stats(model: nn.Module, layer_names: Sequence[str],
                             batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> GradientStats:
    """Sum over the batches of each input feature's squares, for the named layers
    (``GradientStats.input_sq``: a Linear's input features; a convolution's input channels)."""
    wanted = set(layer_names)
    stats = GradientStats()

    def record(name: str, source: torch.Tensor, weight: torch.Tensor, _out: torch.Tensor) -> None:
        if name not in wanted:
            return
        if weight.dim() > 2:       # convolution: (N, C, H, W) -> per input channel
            squares = source.detach().pow(2).transpose(0, 1).reshape(source.shape[1], -1).sum(1)
        else:                      # linear: (..., features) -> per feature
            squares = source.detach().pow(2).reshape(-1, source.shape[-1]).sum(0)
        squares = squares.float()
        stats.input_sq[name] = stats.input_sq[name] + squares if name in stats.input_sq else squares

    was_training = model.training
    model.eval()
    try:
        for x, _y in batches:
            with parametrize.cached():
                with WeightCalls(layer_weights(model, tuple(PRUNABLE)), record):
                    model(x)
            stats.batches += 1
    finally:
        model.train(was_training)
    if stats.batches == 0:
        raise ValueError("activation statistics need at least one batch of training data")
    missing = sorted(wanted - set(stats.input_sq))
    if missing:
        raise ValueError(f"layers {missing} never received an input in the calibration batches")
    return stats
