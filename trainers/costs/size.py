"""Storage of a compressed model: weights at their bit-widths, the sparsity pattern, the rest.

Per prunable layer: surviving weights at the layer's bit-width, plus the pattern that says which
weights survive, plus one float32 scale per output channel when the layer is quantized (< 32 bits,
per-channel symmetric quantization as in ``trainers.quantization``). Parameters outside the prunable
layers (biases, norms) are stored dense as float32. Pattern cost per layer:

- unstructured (and any other mask): the cheaper of a bitmask (1 bit per weight) and an index list
  (``ceil(log2(params))`` bits per surviving weight); a dense layer needs no pattern;
- N:M (``2:4``, or ``n:4`` when N differs per layer): ``ceil(log2(M))`` bits per surviving weight (its position in its group), the
  metadata format of sparse tensor cores;
- channel: none, the channels are physically gone (the basis is the smaller model's).
"""
from __future__ import annotations

import math
import re
from typing import Mapping

from spaces.layers import LayerInfo
from trainers.costs.basis import BasisLike, as_basis, kept_weights

FLOAT_BITS = 32
N_M_PATTERN = re.compile(r"^(\d+|n):(\d+)$")     # "2:4", or "n:4" when N varies per layer


def pattern_bits(params: int, nonzero: int, granularity: str = "unstructured") -> int:
    """Bits that record which of ``params`` weights are the ``nonzero`` survivors."""
    if nonzero >= params:
        return 0
    n_m = N_M_PATTERN.match(granularity)
    if n_m:
        return nonzero * max(1, math.ceil(math.log2(int(n_m.group(2)))))
    index_bits = max(1, math.ceil(math.log2(params)))
    return min(params, nonzero * index_bits)


def layer_size_bits(layer: LayerInfo, sparsity: float, bits: int,
                    granularity: str = "unstructured") -> int:
    """Surviving weights at ``bits`` + pattern + one float32 scale per output channel if quantized."""
    nonzero = kept_weights(layer, sparsity)
    scales = layer.out_channels * FLOAT_BITS if bits < FLOAT_BITS else 0
    return nonzero * bits + pattern_bits(layer.params, nonzero, granularity) + scales


def model_size_bytes(basis: BasisLike, sparsity: Mapping[str, float], bits: Mapping[str, int], *,
                     granularity: str = "unstructured") -> float:
    """Bytes of the stored model: prunable layers compressed, everything else float32."""
    basis = as_basis(basis)
    total = sum(layer_size_bits(layer, sparsity.get(layer.name, 0.0),
                                bits.get(layer.name, FLOAT_BITS), granularity)
                for layer in basis.layers)
    return (total + basis.other_params * FLOAT_BITS) / 8.0


def nonzero_params(basis: BasisLike, sparsity: Mapping[str, float]) -> int:
    """Parameters left after pruning: surviving weights plus all parameters outside the layers.

    Weights that quantization rounds to zero are not subtracted (the pattern is the pruning mask).
    """
    basis = as_basis(basis)
    return basis.other_params + sum(kept_weights(layer, sparsity.get(layer.name, 0.0))
                                    for layer in basis.layers)
