"""Output channels that channel pruning must keep, and the attention heads it removes whole.

The classifier's outputs (the model's output), the output projections of attention (a
transformer's residual width, which model code hard-codes) and the outputs of a layer whose weight
another module holds too (a mask on one holder would not reach the others): a coupled group that
reaches any of them is not pruned (``trainers.pruning.structured``).
"""
from __future__ import annotations

from typing import Mapping, Sequence

from torch import nn

from trainers.discovery import Discovery


def head_dims(model: nn.Module) -> tuple[dict[str, int], set[str]]:
    """For every module declaring ``head_layout()``: projection layer name -> channels per head,
    and the names of the output projections (whose output is the residual stream)."""
    heads, outputs = {}, set()
    for name, module in model.named_modules():
        layout = getattr(module, "head_layout", None)
        if callable(layout):
            head_dim, projections, output = layout()
            prefix = f"{name}." if name else ""
            heads.update({prefix + projection: int(head_dim) for projection in projections})
            outputs.add(prefix + output)
    return heads, outputs


def fixed_outputs(model: nn.Module, found: Discovery) -> set[str]:
    """Modules whose output channels must stay: the classifier (the last Conv2d / Linear
    executed, searched or not), the output projections of attention (the residual stream) and
    layers with a tied weight (a mask on one holder would not reach the others)."""
    fixed = head_dims(model)[1] | set(found.tied)
    if found.classifier is not None:
        fixed.add(found.classifier)
    return fixed


def blocked(found: Mapping[str, Sequence[int]], fixed: set[str]) -> bool:
    """A group that must not be pruned: it would change the model's output (the classifier's
    outputs), a transformer's residual width, which model code hard-codes (torchvision's ViT
    reshapes its patches to ``hidden_dim``), or the outputs of a tied weight."""
    return bool(fixed.intersection(found))


__all__ = ["blocked", "fixed_outputs", "head_dims"]
