"""Reject candidates whose masks cut a model output off from the input (before any training).

Pruning a classifier row, or every weight that leads to it, leaves an output that no input can
move: the class is predicted by its bias alone and fine-tuning can't bring it back (masked weights
stay zero). Such a candidate is invalid, not merely bad, and is rejected without training.

How: a probe copy of the model in float64 where each prunable layer's weight is its 0/1 mask (bias
0) and its output is binarised (> 0), every other parameter made non-negative, normalisation layers
bypassed, fed an all-ones input. Activations stay >= 0 through ReLU-like functions, pooling, sums and
concatenations, so an output that is exactly 0 has no surviving path from the input. Modules that
could turn a live signal into 0 are not modelled exactly; they err towards "alive" (accepted), never
towards a false rejection on the usual conv / linear / norm / pooling graphs.

Single hidden units without a path are allowed: they only waste their weights.
"""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

import torch
from torch import nn

from spaces.layers import LayerInfo

NORMALISATIONS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm,
                  nn.LocalResponseNorm)


def _binarise(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> torch.Tensor:
    return (output > 0).to(output.dtype)


def _bypass(_module: nn.Module, inputs: tuple, _output: torch.Tensor) -> torch.Tensor:
    return inputs[0]


@torch.no_grad()
def dead_output_reason(model_factory: Callable[[], nn.Module], masks: Mapping[str, torch.Tensor],
                       layers: Sequence[LayerInfo], input_shape: Sequence[int]) -> str | None:
    """Why the masked model has outputs cut off from its input, or None when every output lives.

    Args:
        model_factory: builds a fresh (untrained) model of the same architecture.
        masks: layer name -> boolean keep-mask (missing layers are dense).
        layers: the prunable layers (their weights are replaced by masks in the probe).
        input_shape: one sample's shape, without the batch dimension.
    """
    for layer in layers:
        mask = masks.get(layer.name)
        if mask is not None and not bool(mask.any()):
            return f"layer '{layer.name}' has every weight pruned (its output is removed)"
    classifier = next((layer for layer in layers if layer.is_classifier), None)
    if classifier is not None and classifier.name in masks:
        rows = masks[classifier.name].reshape(classifier.out_channels, -1).any(dim=1)
        dead = (~rows).nonzero().flatten().tolist()
        if dead:
            return (f"classifier '{classifier.name}' has every weight of output(s) "
                    f"{_short(dead)} pruned")
    try:
        with torch.random.fork_rng(devices=[]):  # building the probe must not move the seed
            probe, first_dead = _probe(model_factory, masks, layers)
        out = probe(torch.ones((1, *input_shape), dtype=torch.float64))
    except Exception:  # a model the probe cannot run (e.g. integer inputs): don't judge it
        return None
    if not isinstance(out, torch.Tensor):
        return None
    dead = (out.reshape(out.shape[0], -1)[0] <= 0).nonzero().flatten().tolist()
    if not dead:
        return None
    where = f" (no surviving path through layer '{first_dead[0]}')" if first_dead else ""
    return f"model output(s) {_short(dead)} are cut off from the input{where}"


def _probe(model_factory: Callable[[], nn.Module], masks: Mapping[str, torch.Tensor],
           layers: Sequence[LayerInfo]) -> tuple[nn.Module, list[str]]:
    probe = model_factory().to(device="cpu", dtype=torch.float64).eval()
    prunable = {layer.name for layer in layers}
    first_dead: list[str] = []
    modules = dict(probe.named_modules())
    for name, module in modules.items():
        if isinstance(module, NORMALISATIONS):
            module.register_forward_hook(_bypass)
        elif name in prunable:
            weight = module.weight
            mask = masks.get(name)
            weight.copy_(torch.ones_like(weight) if mask is None
                         else torch.broadcast_to(mask.to(device="cpu", dtype=weight.dtype),
                                              weight.shape))
            if getattr(module, "bias", None) is not None:
                module.bias.zero_()

            def hook(mod, inputs, output, name=name):
                output = _binarise(mod, inputs, output)
                if not first_dead and not bool(output.any()):
                    first_dead.append(name)
                return output

            module.register_forward_hook(hook)
        else:
            for param in module.parameters(recurse=False):
                param.abs_()
    return probe, first_dead


def _short(indices: list[int], limit: int = 8) -> str:
    shown = ", ".join(str(i) for i in indices[:limit])
    return f"[{shown}{', ...' if len(indices) > limit else ''}] ({len(indices)} in all)" \
        if len(indices) > limit else f"[{shown}]"


__all__ = ["dead_output_reason"]
