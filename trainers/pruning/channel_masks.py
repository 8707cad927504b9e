"""Masks that silence removed output channels: the weight rows of each layer and the 1-D
parameters (biases, norm weights and biases) of every module a coupled removal reaches
(``trainers.pruning.structured.ChannelCoupling.expand`` says which)."""
from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import nn

from trainers.discovery import layer_kind


def channel_masks(model: nn.Module, removed: Mapping[str, Sequence[int]]
                  ) -> tuple[dict[str, torch.Tensor], dict[tuple[str, str], torch.Tensor]]:
    """Weight masks (rows of Conv2d / Linear) and 1-D parameter masks (biases, norm weights and
    biases) that silence the removed output channels of each module."""
    modules = dict(model.named_modules())
    weights: dict[str, torch.Tensor] = {}
    params: dict[tuple[str, str], torch.Tensor] = {}
    for name, idxs in removed.items():
        module = modules[name]
        index = torch.as_tensor(list(idxs), dtype=torch.long)
        if layer_kind(module) is not None:
            mask = torch.ones_like(module.weight, dtype=torch.bool)
            mask[index] = False
            weights[name] = mask
            tensors = ["bias"]
        else:
            tensors = ["weight", "bias"]
        for tensor_name in tensors:
            value = getattr(module, tensor_name, None)
            if isinstance(value, torch.Tensor) and value.dim() == 1:
                keep = torch.ones(value.shape[0], dtype=torch.bool, device=value.device)
                keep[index] = False
                params[(name, tensor_name)] = keep
    return weights, params


__all__ = ["channel_masks"]
