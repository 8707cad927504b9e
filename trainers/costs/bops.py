"""Bit-operations per sample: multiply-accumulates x weight bits x activation bits.

The usual measure of quantized-and-sparse compute (e.g. Baskin et al., "UNIQ", and van Baalen et
al., "Bayesian Bits"): a MAC of a ``w``-bit weight with an ``a``-bit activation counts ``w * a``.
Only surviving MACs count (the sparsity-aware convention of ``effective_flops``). MACs outside the
prunable layers run at 32-bit weights; the weight-free products (attention's Q K^T, attention x V)
multiply two activations: ``a * a`` per MAC.
"""
from __future__ import annotations

from typing import Mapping

from trainers.costs.basis import BasisLike, as_basis, kept_weights

FLOAT_BITS = 32


def bit_operations(basis: BasisLike, sparsity: Mapping[str, float], bits: Mapping[str, int],
                   activation_bits: int = FLOAT_BITS) -> float:
    """Sum over layers of surviving MACs x weight bits x ``activation_bits``."""
    basis = as_basis(basis)
    total = ((basis.other_macs - basis.free_macs) * FLOAT_BITS * activation_bits
             + basis.free_macs * activation_bits * activation_bits)
    for layer in basis.layers:
        density = kept_weights(layer, sparsity.get(layer.name, 0.0)) / layer.params
        total += layer.macs * density * bits.get(layer.name, FLOAT_BITS) * activation_bits
    return float(total)
