"""Masks kept reversible during search (parametrizations); folded in at export.

Weights of prunable layers carry ``MaskedQuantizedWeight`` (mask, then fake-quantize). Channel
pruning also masks 1-D parameters that belong to a removed channel (the bias of the layer, the
weight and bias of the batch norm after it) with ``ParamMask``, so that a masked channel outputs
exactly zero, as if it had been removed.
"""
from __future__ import annotations

import copy
from typing import Mapping

import torch
from torch import nn
from torch.nn.utils import parametrize

from trainers.discovery import shared_parameters
from trainers.quantization import masked_fake_quantize, masked_quantized_values


def mask_from_scores(scores: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Zero exactly ``round(sparsity * n)`` lowest-scoring entries (ties broken by position)."""
    n = scores.numel()
    k = int(round(sparsity * n))
    return mask_lowest(scores, k)


def mask_lowest(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean keep-mask with the ``k`` lowest scores False (stable: earlier position first).

    The same mask as zeroing the first ``k`` of a stable ``argsort``, found without sorting: the
    k-th lowest score (``kthvalue``, linear time) is the threshold; everything below it goes, and
    of the scores equal to it the earliest positions, as many as are still missing. Scores with a
    NaN take the sorting path (a sort places NaN last).
    """
    n = scores.numel()
    flat = scores.reshape(-1)
    mask = torch.ones(n, dtype=torch.bool, device=scores.device)
    k = min(k, n)
    if k <= 0:
        return mask.reshape(scores.shape)
    if k == n:
        return torch.zeros_like(mask).reshape(scores.shape)
    if flat.is_floating_point() and bool(torch.isnan(flat).any()):
        mask[torch.argsort(flat, stable=True)[:k]] = False
        return mask.reshape(scores.shape)
    threshold = flat.kthvalue(k).values
    below = flat < threshold
    mask[below] = False
    missing = k - int(below.sum())
    if missing > 0:
        mask[torch.nonzero(flat == threshold).reshape(-1)[:missing]] = False
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
        return masked_fake_quantize(weight, self.mask, self.bits)

    def values(self, weight: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The forward values without gradient bookkeeping (``trainers.pruning.in_place``);
        ``mask``: this mask in the weight's dtype (the same values, a cheaper product)."""
        return masked_quantized_values(weight, self.mask if mask is None else mask, self.bits)


class ParamMask(nn.Module):
    """Parametrization ``p -> p * mask`` for biases and norm parameters of removed channels."""

    def __init__(self, mask: torch.Tensor):
        super().__init__()
        self.register_buffer("mask", mask.to(torch.bool))

    def forward(self, value: torch.Tensor) -> torch.Tensor:
        return value * self.mask

    def values(self, value: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``forward``'s values; ``mask`` as in ``MaskedQuantizedWeight.values``."""
        return value * (self.mask if mask is None else mask)


def register(module: nn.Module, name: str, masking: MaskedQuantizedWeight | ParamMask) -> None:
    """Register one of our parametrizations on ``module.<name>``. They keep the tensor's shape
    and dtype by construction once the mask has its shape (checked here), so torch's own check,
    which runs the parametrization once and costs about 0.3 ms a layer (a visible share of
    building a small candidate, and done again after every fine-tune), is skipped."""
    tensor = getattr(module, name)
    if masking.mask.shape != tensor.shape:
        raise ValueError(f"a mask of shape {tuple(masking.mask.shape)} for a tensor of shape "
                         f"{tuple(tensor.shape)} ('{name}' of {type(module).__name__})")
    parametrize.register_parametrization(module, name, masking, unsafe=True)


def _find(module: nn.Module, tensor_name: str, kind: type) -> nn.Module | None:
    if not parametrize.is_parametrized(module, tensor_name):
        return None
    for param in getattr(module.parametrizations, tensor_name):
        if isinstance(param, kind):
            return param
    return None


def attach(model: nn.Module, masks: Mapping[str, torch.Tensor], bits: Mapping[str, int]) -> None:
    """Register (or replace) the mask-and-quantize parametrization on each named layer.

    A layer whose weight another module holds too (tied) is refused: the parametrization would
    reach only this holder, and folding it would write into the shared tensor.
    """
    modules = dict(model.named_modules())
    _refuse_tied(model, set(masks) | set(bits))
    for name in set(masks) | set(bits):
        module = modules[name]
        weight = module.weight
        mask = masks.get(name)
        if mask is None:
            mask = torch.ones_like(weight, dtype=torch.bool)
        if parametrize.is_parametrized(module, "weight"):
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=False)
        register(module, "weight", MaskedQuantizedWeight(mask.to(weight.device),
                                                         bits.get(name, 32)))


def _refuse_tied(model: nn.Module, names: set[str]) -> None:
    shared = shared_parameters(model)
    for name in sorted(names):
        others = shared.get(f"{name}.weight" if name else "weight")
        if others:
            holders = ", ".join(f"'{other}'" for other in others)
            raise ValueError(f"the weight of '{name}' is shared with {holders} (tied): a mask or "
                             f"quantizer on one holder would not reach the others; leave '{name}' "
                             f"out of the candidate (discovery leaves tied layers out of the search)")


def set_masks(model: nn.Module, masks: Mapping[str, torch.Tensor],
              param_masks: Mapping[tuple[str, str], torch.Tensor] | None = None,
              bits: Mapping[str, int] | None = None) -> None:
    """Update masks in place where attached, attach them elsewhere.

    In-place updates keep the parameters' identity, so an optimizer in the middle of training
    (gradual schedule) goes on with the same parameters. ``param_masks`` maps
    ``(module name, parameter name)`` to a 1-D mask (biases, norm weights).
    """
    modules = dict(model.named_modules())
    bits = bits or {}
    missing = {}
    for name, mask in masks.items():
        existing = _find(modules[name], "weight", MaskedQuantizedWeight)
        if existing is not None:
            existing.mask.copy_(mask.to(existing.mask.device))
        else:
            missing[name] = mask
    if missing:
        attach(model, missing, {n: bits.get(n, 32) for n in missing})
    for (module_name, param_name), mask in (param_masks or {}).items():
        module = modules[module_name]
        existing = _find(module, param_name, ParamMask)
        if existing is not None:
            existing.mask.copy_(mask.to(existing.mask.device))
        else:
            device = getattr(module, param_name).device
            register(module, param_name, ParamMask(mask.to(device)))


def current_masks(model: nn.Module) -> dict[str, torch.Tensor]:
    """The weight masks currently attached, by layer name."""
    found = {}
    for name, module in model.named_modules():
        param = _find(module, "weight", MaskedQuantizedWeight)
        if param is not None:
            found[name] = param.mask
    return found


def current_param_masks(model: nn.Module) -> dict[tuple[str, str], torch.Tensor]:
    """The 1-D parameter masks (biases, norms) currently attached."""
    found = {}
    for name, module in model.named_modules():
        for tensor_name in list(getattr(module, "parametrizations", {}) or {}):
            param = _find(module, tensor_name, ParamMask)
            if param is not None:
                found[(name, tensor_name)] = param.mask
    return found


def fold(model: nn.Module) -> nn.Module:
    """Make masks and quantization permanent: plain parameters, no parametrizations left."""
    return _remove_parametrizations(model, keep_effect=True)


def remove_masks(model: nn.Module) -> nn.Module:
    """Drop every mask and quantizer, restoring the original (dense, float) tensors."""
    return _remove_parametrizations(model, keep_effect=False)


def _remove_parametrizations(model: nn.Module, *, keep_effect: bool) -> nn.Module:
    for module in model.modules():
        if parametrize.is_parametrized(module):
            for tensor_name in list(module.parametrizations):
                parametrize.remove_parametrizations(module, tensor_name,
                                                    leave_parametrized=keep_effect)
    return model


def folded_copy(model: nn.Module) -> nn.Module:
    """A deep copy with masks and quantization folded in, leaving ``model`` untouched.

    ``fold(copy.deepcopy(model))`` is wrong for a parametrized model: the copy shares the
    parametrized modules' generated classes with the original, and removing a parametrization
    deletes the property from that shared class, breaking the original. Here the copy's modules
    get their plain class back and plain parameters holding the effective values.
    """
    clone = copy.deepcopy(model)
    for module in clone.modules():
        if not parametrize.is_parametrized(module):
            continue
        values = {}
        for tensor_name in list(module.parametrizations):
            original = getattr(module.parametrizations, tensor_name).original
            values[tensor_name] = (getattr(module, tensor_name).detach().clone(),
                                   original.requires_grad)
        module.__class__ = parametrize.type_before_parametrizations(module)
        del module.parametrizations
        for tensor_name, (value, requires_grad) in values.items():
            module.register_parameter(tensor_name, nn.Parameter(value, requires_grad=requires_grad))
    return clone
