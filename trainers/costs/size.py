"""Storage size of a compressed model: weights at their bit-widths plus the sparsity pattern."""
from __future__ import annotations

import math
from typing import Mapping, Sequence

from spaces.layers import LayerInfo

FLOAT_BITS = 32


def pattern_bits(params: int, nonzero: int) -> int:
    """Bits to store which weights survive: the cheaper of a bitmask and an index list.

    The index list stores each surviving weight's position in ``ceil(log2(params))`` bits; a dense
    layer needs no pattern at all.
    """
    if nonzero >= params:
        return 0
    index_bits = max(1, math.ceil(math.log2(params)))
    return min(params, nonzero * index_bits)


def layer_size_bits(layer: LayerInfo, sparsity: float, bits: int) -> int:
    """Weights at ``bits`` + pattern + one float scale per output channel when quantized."""
    nonzero = layer.params - int(round(sparsity * layer.params))
    scales = layer.out_channels * FLOAT_BITS if bits < FLOAT_BITS else 0
    return nonzero * bits + pattern_bits(layer.params, nonzero) + scales


def model_size_bytes(layers: Sequence[LayerInfo], sparsity: Mapping[str, float],
                     bits: Mapping[str, int], other_params: int) -> float:
    """Bytes of the compressed model; ``other_params`` (biases, norms) are stored as float32."""
    total = sum(layer_size_bits(layer, sparsity.get(layer.name, 0.0), bits.get(layer.name, 32))
                for layer in layers)
    return (total + other_params * FLOAT_BITS) / 8.0


def nonzero_params(layers: Sequence[LayerInfo], sparsity: Mapping[str, float],
                   other_params: int) -> int:
    return other_params + sum(layer.params - int(round(sparsity.get(layer.name, 0.0) * layer.params))
                              for layer in layers)
