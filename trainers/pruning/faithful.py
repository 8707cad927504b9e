"""Which layers' channels the search may mask: those whose masked model computes what the
physically shrunk model (costed and exported) computes.

A masked channel outputs exactly zero, and for most couplings removing it gives the same outputs
(``trainers.pruning.structured``). Not always: a LayerNorm or GroupNorm after the layer still
counts the zeroed channel in its mean and variance (a removed one is not counted), an unsplit
``nn.MultiheadAttention`` changes its head size when its embedding shrinks, and torch-pruning
gets some couplings wrong (a concatenation flattened into a Linear) or cannot follow them (a
GRU). A trial of such a layer would record the accuracy of a model that nobody can export.

``unfaithful_layers`` tries it once per architecture on a seeded random batch: a quarter of every
layer's channels masked in one copy and removed in another, all layers at once; only when the
outputs differ (or removing fails) is each layer tried alone, to name the ones at fault. The
search then leaves those layers' channels alone (``ChannelCoupling.expand``), as it does for the
classifier's outputs.
"""
from __future__ import annotations

import copy
from typing import Callable, Mapping, Sequence

import torch
from torch import nn

from trainers.errors import error_summary
from trainers.pruning.channel_masks import channel_masks

RATIO = 0.25          # of each layer's channels (or heads, or block positions) removed to try
CROSS_CHANNEL = (nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm)
_CACHE: dict[tuple, dict[str, str]] = {}


def unfaithful_layers(plain: nn.Module, example: torch.Tensor, layers: Sequence[str],
                      request: Callable[[str], list[int]],
                      expand: Callable[[Mapping[str, Sequence[int]]], dict[str, list[int]]],
                      shrink: Callable[[Mapping[str, torch.Tensor]], nn.Module]
                      ) -> dict[str, str]:
    """Layer -> why its channels cannot be masked faithfully (empty: every layer can).

    ``plain``: the model without parametrizations (not modified); ``request(name)``: the channel
    indices a small ratio removes from that layer; ``expand``: coupled removals, as the search
    makes them; ``shrink(keep_masks)``: the physically smaller copy, as export makes it.
    """
    key = (type(plain).__module__, type(plain).__qualname__, repr(plain), tuple(example.shape),
           example.dtype, tuple(layers))
    if key not in _CACHE:
        with torch.enable_grad():      # torch-pruning traces through autograd
            _CACHE[key] = _find(plain, example, layers, request, expand, shrink)
    return dict(_CACHE[key])


def _find(plain: nn.Module, example: torch.Tensor, layers: Sequence[str], *tools: Callable
          ) -> dict[str, str]:
    """Groups of coupled layers (their removals reach the same modules: one verdict) that reach
    a cross-channel norm are left out at once; the rest are tried all at once and, when that
    fails, halved until the failing groups are alone (``tools``: request, expand, shrink)."""
    request, expand = tools[0], tools[1]
    modules = dict(plain.named_modules())
    members: dict[object, list[str]] = {}
    for name in layers:
        try:
            reach: object = frozenset(expand({name: request(name)}))
        except Exception:          # tried (and named) alone below
            reach = name
        members.setdefault(reach, []).append(name)
    found = {}
    for reach, names in list(members.items()):
        norm = sorted(m for m in reach if isinstance(modules.get(m), CROSS_CHANNEL)) \
            if isinstance(reach, frozenset) else []
        if norm:
            found.update({name: f"{norm[0]} ({type(modules[norm[0]]).__name__}) normalises "
                                f"across its channels: a masked channel still counts in its "
                                f"statistics, a removed one does not" for name in names})
            del members[reach]
    batch = _batch(example)
    rest = [name for names in members.values() for name in names]
    if not rest or _try(plain, batch, rest, *tools) is None:
        return found
    groups = {names[0]: names for names in members.values()}
    for first, why in _halving(plain, batch, list(groups), tools).items():
        found.update({name: why for name in groups[first]})
    return found


def _halving(plain: nn.Module, batch: torch.Tensor, names: list[str], tools: Sequence[Callable]
             ) -> dict[str, str]:
    """The layers of ``names`` whose channels fail alone, found by halving."""
    why = _try(plain, batch, names, *tools)
    if why is None:
        return {}
    if len(names) == 1:
        return {names[0]: why}
    half = len(names) // 2
    return {**_halving(plain, batch, names[:half], tools),
            **_halving(plain, batch, names[half:], tools)}


def _batch(example: torch.Tensor) -> torch.Tensor:
    """A seeded random batch like ``example`` (token ids stay as given); the global random
    state is not touched."""
    if not example.is_floating_point():
        return example
    generator = torch.Generator().manual_seed(0)
    return torch.randn((2, *example.shape[1:]), generator=generator,
                       dtype=example.dtype).to(example.device)


def _try(plain: nn.Module, batch: torch.Tensor, names: Sequence[str],
         request: Callable[[str], list[int]],
         expand: Callable[[Mapping[str, Sequence[int]]], dict[str, list[int]]],
         shrink: Callable[[Mapping[str, torch.Tensor]], nn.Module]) -> str | None:
    """None if masking and removing ``names``' channels give the same outputs, else why not."""
    try:
        wanted = {name: request(name) for name in names}
        removed = expand({name: idxs for name, idxs in wanted.items() if idxs})
        if not removed:
            return None                      # nothing prunable here (blocked groups)
        masked = _masked_copy(plain, removed)
        modules = dict(plain.named_modules())
        keep = {}
        for name, idxs in wanted.items():
            mask = torch.ones(modules[name].weight.shape[0], dtype=torch.bool)
            mask[idxs] = False
            keep[name] = mask
        shrunk = shrink(keep).eval()     # (traced with autograd on)
        with torch.no_grad():
            expected, got = masked(batch), shrunk(batch)
    except Exception as exc:   # torch-pruning or the shrunk model failed
        return f"removing its channels fails ({error_summary(exc, 120)})"
    if not isinstance(expected, torch.Tensor) or not isinstance(got, torch.Tensor) \
            or expected.shape != got.shape:
        return "removing its channels changes the model's output shape"
    scale = float(expected.abs().max()) or 1.0
    if not torch.allclose(expected, got, rtol=1e-3, atol=1e-4 * scale):
        gap = float((expected - got).abs().max())
        return (f"masked and removed channels give different outputs (max difference {gap:.3g}: "
                f"e.g. a LayerNorm / GroupNorm normalising across them)")
    return None


def _masked_copy(plain: nn.Module, removed: Mapping[str, Sequence[int]]) -> nn.Module:
    """A copy of ``plain`` with the removed channels' weights and parameters zeroed, as the
    search's masks zero them."""
    masked = copy.deepcopy(plain).eval()
    weights, params = channel_masks(masked, removed)
    modules = dict(masked.named_modules())
    with torch.no_grad():
        for name, mask in weights.items():
            modules[name].weight.mul_(mask.to(modules[name].weight.dtype))
        for (name, tensor), mask in params.items():
            value = getattr(modules[name], tensor)
            value.mul_(mask.to(value.dtype))
    return masked


__all__ = ["unfaithful_layers"]
