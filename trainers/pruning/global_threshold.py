"""Global magnitude pruning: one |w| threshold across all layers (a hand-made baseline)."""
from __future__ import annotations

from typing import Mapping, Sequence

import torch


def global_magnitude_sparsity(state: Mapping[str, torch.Tensor], layers: Sequence[str],
                              sparsity: float) -> dict[str, float]:
    """Per-layer fractions removed when the ``sparsity`` smallest-|w| weights of all ``layers``
    together are pruned (the threshold is shared, so small-weight layers lose more)."""
    weights = {name: state[f"{name}.weight"].detach().abs().reshape(-1).float() for name in layers}
    every = torch.cat(list(weights.values()))
    k = int(round(sparsity * every.numel()))
    if k == 0:
        return {name: 0.0 for name in layers}
    threshold = torch.kthvalue(every, k).values
    return {name: float((w <= threshold).float().mean()) for name, w in weights.items()}
