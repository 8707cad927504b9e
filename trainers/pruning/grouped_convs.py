"""Grouped convolutions (``1 < groups``, not depthwise) in channel pruning.

torch-pruning's graph couples a depthwise convolution's inputs with its outputs channel by channel,
but not a grouped one's, and a grouped convolution stays valid only if each of its groups keeps as
many output channels as the others and loses the same positions of its input channels
(``prune_conv_in_channels`` keeps group 0's positions in every group). As torch-pruning's own
pruners do, channels that reach grouped convolutions are therefore pruned in equal blocks at the
same positions (``trainers.pruning.structured.lowest_channels``), and a group that would still
leave one invalid (a concatenation shifts the positions; a convolution with several outputs per
input channel cannot lose an input) is not pruned at all.
"""
from __future__ import annotations

import math

import torch_pruning as tp
from torch import nn


def is_grouped_conv(module: object) -> bool:
    """A grouped convolution, whose inputs the graph does not couple with its outputs: ``groups``
    > 1 and not depthwise (``groups == in_channels == out_channels``)."""
    return (isinstance(module, nn.modules.conv._ConvNd) and module.groups > 1
            and not module.groups == module.in_channels == module.out_channels)


def has_grouped_conv(model: nn.Module) -> bool:
    return any(is_grouped_conv(module) for module in model.modules())


def channel_blocks(group) -> int:
    """The equal blocks a pruning group's root channels must be pruned in: the lcm of the groups
    of the grouped convolutions it reaches, as outputs or inputs (1: none)."""
    blocks = 1
    for dep, _ in group:
        if is_grouped_conv(dep.target.module):
            blocks = math.lcm(blocks, dep.target.module.groups)
    return blocks


def fits_conv_groups(graph: tp.DependencyGraph, group) -> bool:
    """Whether pruning ``group`` leaves every grouped convolution it touches valid: each group of
    its output channels loses as many as the others, each group of its input channels the same
    positions, and every group keeps at least one."""
    for dep, idxs in group:
        module = dep.target.module
        if not is_grouped_conv(module):
            continue
        if module.transposed:             # weight laid out (in, out / groups): not handled
            return False
        outputs = graph.is_out_channel_pruning_fn(dep.handler)
        if not outputs and not graph.is_in_channel_pruning_fn(dep.handler):
            continue
        size = (module.out_channels if outputs else module.in_channels) // module.groups
        positions: list[set[int]] = [set() for _ in range(module.groups)]
        for i in {int(i) for i in idxs}:
            positions[i // size].add(i % size)
        if len(positions[0]) >= size:
            return False
        if outputs and any(len(p) != len(positions[0]) for p in positions):
            return False
        if not outputs and any(p != positions[0] for p in positions):
            return False
    return True
