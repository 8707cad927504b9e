"""Per-layer sparsity by rule, as the literature allocates it (hand-made baselines).

Each rule maps the dense weights of the searched layers and one overall sparsity to a fraction
removed per layer, in the signature of ``global_magnitude_sparsity``; ``ALLOCATIONS`` names them
for ``search.baselines``:

- ``uniform_sparsity``: the same sparsity in every layer;
- ``global_magnitude_sparsity`` (``global_threshold``): one |w| threshold across all layers;
- ``lamp_sparsity``: LAMP (Lee et al., ICLR 2021). A weight's score is its square divided by the
  sum of the squares of the weights of its layer at least as large; the lowest scores across all
  layers are removed. A layer's largest weight scores 1, so no layer is emptied before the end.
- ``erk_sparsity``: Erdős-Rényi-Kernel (Evci et al., RigL, ICML 2020). A layer's density is
  proportional to the sum of its weight's dimensions over their product ((c_out + c_in + kh + kw) /
  (c_out c_in kh kw) for a convolution, (fan_in + fan_out) / (fan_in fan_out) for a linear
  layer): small layers stay denser. Reads only shapes.
"""
from __future__ import annotations

import math
from typing import Callable, Mapping, Sequence

import torch

from trainers.pruning.global_threshold import global_magnitude_sparsity
from trainers.pruning.masks import mask_lowest

Allocation = Callable[[Mapping[str, torch.Tensor], Sequence[str], float], dict[str, float]]


def _check(sparsity: float) -> None:
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")


def uniform_sparsity(state: Mapping[str, torch.Tensor], layers: Sequence[str],
                     sparsity: float) -> dict[str, float]:
    """The same sparsity in every layer."""
    return {name: sparsity for name in layers}


def lamp_scores(weight: torch.Tensor) -> torch.Tensor:
    """LAMP score of every weight of one layer (flattened, in the weight's own order)."""
    squares = weight.detach().reshape(-1).double() ** 2
    ordered, order = torch.sort(squares)
    # Sum of the squares at least as large: a suffix sum over the ascending order.
    larger = torch.flip(torch.cumsum(torch.flip(ordered, [0]), 0), [0])
    scores = torch.empty_like(squares)
    scores[order] = torch.where(larger > 0, ordered / larger, torch.zeros_like(ordered))
    return scores


def lamp_sparsity(state: Mapping[str, torch.Tensor], layers: Sequence[str],
                  sparsity: float) -> dict[str, float]:
    """Per-layer fractions removed when the ``sparsity`` share of all ``layers``' weights with
    the lowest LAMP scores are pruned (exactly that many weights, ties broken by order)."""
    _check(sparsity)
    scores = {name: lamp_scores(state[f"{name}.weight"]) for name in layers}
    every = torch.cat(list(scores.values()))
    k = int(round(sparsity * every.numel()))
    removed = ~mask_lowest(every, k)
    found, start = {}, 0
    for name, layer_scores in scores.items():
        part = removed[start:start + layer_scores.numel()]
        found[name] = float(part.double().mean())
        start += layer_scores.numel()
    return found


def erk_sparsity(state: Mapping[str, torch.Tensor], layers: Sequence[str],
                 sparsity: float) -> dict[str, float]:
    """Per-layer fractions removed so that densities follow ERK and the kept weights of all
    ``layers`` together are ``1 - sparsity`` of them.

    Densities are ``scale * sum(shape) / prod(shape)``; a layer whose density would exceed 1 is
    kept dense and the scale is solved again over the others, until none exceeds 1.
    """
    _check(sparsity)
    shapes = {name: tuple(state[f"{name}.weight"].shape) for name in layers}
    sizes = {name: math.prod(shape) for name, shape in shapes.items()}
    raw = {name: sum(shape) / sizes[name] for name, shape in shapes.items()}
    kept = (1.0 - sparsity) * sum(sizes.values())
    dense: set[str] = set()
    while True:
        rest = [name for name in layers if name not in dense]
        budget = kept - sum(sizes[name] for name in dense)
        weighted = sum(raw[name] * sizes[name] for name in rest)
        scale = budget / weighted if weighted else 0.0
        over = {name for name in rest if raw[name] * scale > 1.0}
        if not over:
            break
        dense |= over
    return {name: 0.0 if name in dense else max(0.0, 1.0 - raw[name] * scale) for name in layers}


# The rules by their ``search.baselines`` name (``search.config.BASELINES`` lists the same names
# without importing torch; a test keeps the two equal).
ALLOCATIONS: dict[str, Allocation] = {
    "uniform": uniform_sparsity,
    "global_magnitude": global_magnitude_sparsity,
    "lamp": lamp_sparsity,
    "erk": erk_sparsity,
}
