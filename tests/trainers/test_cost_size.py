"""Storage size and bit-operations against hand computations."""
from __future__ import annotations

import pytest
from torch import nn

from trainers.costs import (bit_operations, cost_basis, model_size_bytes, nonzero_params,
                            pattern_bits)


def two_layer_model() -> nn.Module:
    # conv: 4 x 1 x 5 x 5 = 100 weights + 4 biases; fc: 10 x 1000 = 10000 weights + 10 biases
    return nn.Sequential(nn.Conv2d(1, 4, 5, padding=2), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 250, 10))


def test_size_at_4_bits_and_80_percent_sparsity_by_hand():
    basis = cost_basis(two_layer_model(), (1, 10, 25))
    assert [layer.params for layer in basis.layers] == [100, 10000]
    assert basis.other_params == 14
    sparsity = {"0": 0.8, "3": 0.8}
    bits = {"0": 4, "3": 4}
    # conv: 20 kept x 4 bits = 80; pattern min(bitmask 100, index 20 x ceil(log2 100)=7 -> 140)
    #       = 100; scales 4 x 32 = 128  -> 308 bits
    # fc: 2000 kept x 4 = 8000; pattern min(10000, 2000 x 14 = 28000) = 10000; scales 10 x 32 = 320
    #       -> 18320 bits
    # biases: 14 x 32 = 448 bits
    expected_bits = 308 + 18320 + 448
    assert model_size_bytes(basis, sparsity, bits) == expected_bits / 8
    assert nonzero_params(basis, sparsity) == 20 + 2000 + 14


def test_dense_float_model_size_is_four_bytes_per_parameter():
    basis = cost_basis(two_layer_model(), (1, 10, 25))
    assert model_size_bytes(basis, {}, {}) == 4 * (100 + 10000 + 14)


@pytest.mark.parametrize("params, nonzero, granularity, expected", [
    (1000, 1000, "unstructured", 0),          # dense: no pattern
    (1000, 200, "unstructured", 1000),        # bitmask (200 x 10 = 2000 bits of indices)
    (1000, 50, "unstructured", 500),          # index list: 50 x ceil(log2 1000) = 500 < 1000
    (1000, 500, "2:4", 1000),                 # N:M: 2 bits of position per kept weight
    (1024, 128, "1:8", 384),                  # 3 bits per kept weight
    (1024, 256, "n:4", 512),                  # N chosen per layer, blocks of 4
])
def test_pattern_is_the_cheaper_encoding(params, nonzero, granularity, expected):
    assert pattern_bits(params, nonzero, granularity) == expected


def test_bit_operations_by_hand():
    basis = cost_basis(nn.Sequential(nn.Linear(8, 4, bias=False), nn.Linear(4, 2)), (8,))
    # layer 0: 32 MACs, 24 of 32 weights kept, 4 bits; layer 1: 8 MACs dense, 32 bits; acts 8 bits
    expected = 32 * 0.75 * 4 * 8 + 8 * 32 * 8
    assert bit_operations(basis, {"0": 0.25}, {"0": 4}, activation_bits=8) == expected
