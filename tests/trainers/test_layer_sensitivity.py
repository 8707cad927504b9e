"""The sensitivity measurement's weight statistics on a hand-made layer (the measurement itself is
run end to end in tests/search/test_sensitivity.py)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from trainers.pruning.masks import current_masks, remove_masks, set_masks
from trainers.sensitivity import weight_statistics


def test_weight_statistics_on_a_hand_made_layer():
    layer = nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, -2.0, 0.001, 0.0]]))
    stats = weight_statistics(nn.Sequential(layer), ["0"]).iloc[0]
    assert stats["params"] == 4
    assert stats["l1_norm"] == pytest.approx(3.001)
    assert stats["max_abs"] == 2.0
    assert stats["near_zero_fraction"] == 0.5          # |w| < 0.01 * 2: 0.001 and 0


def test_remove_masks_restores_the_dense_weight():
    layer = nn.Linear(3, 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, -2.0, 3.0]]))
    model = nn.Sequential(layer)
    set_masks(model, {"0": torch.tensor([[True, False, True]])}, {})
    assert model[0].weight.tolist() == [[1.0, 0.0, 3.0]]
    remove_masks(model)
    assert current_masks(model) == {}
    assert model[0].weight.tolist() == [[1.0, -2.0, 3.0]]
