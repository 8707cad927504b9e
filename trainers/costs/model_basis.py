"""The cost basis of a model: its prunable layers, and the parameters and FLOPs outside them;
and the key of what a model's measured costs depend on (``shape_key``)."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from spaces.layers import LayerInfo
from trainers.costs.basis import CostBasis
from trainers.costs.flops import FLOPS_PER_MAC, count_flops
from trainers.discovery import discover
from trainers.reference import count_other_params


def other_flops_of(model: nn.Module, input_shape: Sequence[int],
                   layers: Sequence[LayerInfo]) -> int:
    """FLOPs per sample that ``torch.utils.flop_counter`` counts outside the prunable layers."""
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
    found = discover(model, tuple(input_shape))
    layers = found.layers
    return CostBasis(layers=tuple(layers),
                     other_params=count_other_params(model, {layer.name for layer in layers}),
                     other_flops=other_flops_of(model, input_shape, layers),
                     free_flops=found.free_flops, free_elems=found.free_elems)


def shape_key(model: nn.Module) -> tuple:
    """What a model's FLOPs and latency depend on besides the machine: its class and the names,
    shapes and types of its parameters and buffers (values, e.g. zeros or quantized levels, do
    not change the work of dense kernels). A masked model has the key of its folded copy: a
    parametrized tensor counts under its plain name, the masks not at all."""
    entries = []
    for name, tensor in model.state_dict().items():
        if PARAMETRIZED in name:
            if not name.endswith(ORIGINAL):
                continue            # a mask or other state of the parametrization
            name = name.replace(PARAMETRIZED, ".")[: -len(ORIGINAL)]
        entries.append((name, tuple(tensor.shape), str(tensor.dtype)))
    return (type(model).__qualname__,) + tuple(sorted(entries))


PARAMETRIZED, ORIGINAL = ".parametrizations.", ".original"
