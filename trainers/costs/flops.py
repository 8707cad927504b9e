"""FLOPs: 2 FLOPs per multiply-accumulate, the convention of torch.utils.flop_counter."""
from __future__ import annotations

from typing import Mapping, Sequence

from spaces.layers import LayerInfo

FLOPS_PER_MAC = 2


def dense_flops(layers: Sequence[LayerInfo]) -> int:
    """FLOPs per sample of the Conv2d / Linear layers as a dense model runs them."""
    return FLOPS_PER_MAC * sum(layer.macs for layer in layers)


def effective_flops(layers: Sequence[LayerInfo], density: Mapping[str, float]) -> float:
    """Sparsity-aware FLOPs per sample: each layer's MACs scaled by its weight density.

    This is the work a sparse kernel would do; a dense kernel on a masked model still does
    ``dense_flops``. Layers missing from ``density`` count as dense.
    """
    return FLOPS_PER_MAC * sum(layer.macs * density.get(layer.name, 1.0) for layer in layers)
