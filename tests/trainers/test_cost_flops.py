"""FLOPs: our discovery agrees with torch's FlopCounterMode; effective FLOPs match hand counts."""
from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from spaces.candidate import Candidate
from trainers.costs import (CostBasis, cost_basis, count_flops, dense_flops, effective_flops,
                            kept_weights)
from trainers.models import ModelSettings, build_model
from trainers.pruning import current_masks, prune_model


def flop_counter_total(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """FlopCounterMode's own count, used directly (not through our wrapper)."""
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.randn(1, *input_shape))
    return counter.get_total_flops()


def torchvision_model(name: str) -> nn.Module:
    torch.manual_seed(0)
    return getattr(torchvision.models, name)(weights=None, num_classes=10)


MODELS = [
    pytest.param(lambda: torchvision_model("resnet18"), (3, 32, 32), id="resnet18-32"),
    pytest.param(lambda: torchvision_model("mobilenet_v2"), (3, 64, 64), id="mobilenet_v2-64"),
    pytest.param(lambda: torchvision_model("vgg11_bn"), (3, 32, 32), id="vgg11_bn-32"),
    pytest.param(lambda: build_model(ModelSettings("cnn"), (1, 8, 8), 10), (1, 8, 8), id="cnn"),
    pytest.param(lambda: build_model(ModelSettings("cnn", {"width": 8}), (3, 16, 16), 5),
                 (3, 16, 16), id="cnn-rgb16"),
    pytest.param(lambda: build_model(ModelSettings("mlp"), (1, 8, 8), 10), (1, 8, 8), id="mlp"),
]


@pytest.mark.parametrize("factory, shape", MODELS)
def test_dense_flops_equal_flop_counter_mode(factory, shape):
    model = factory()
    basis = cost_basis(model, shape)
    expected = flop_counter_total(model, shape)
    assert dense_flops(basis) == expected
    # The prunable Conv2d / Linear layers alone carry every FLOP of these models.
    assert basis.other_flops == 0
    assert 2 * sum(layer.macs for layer in basis.layers) == expected


class WithUnprunableOps(nn.Module):
    """A Conv1d and a raw matmul that the prunable-layer discovery does not see."""

    def __init__(self):
        super().__init__()
        self.conv1d = nn.Conv1d(4, 6, 3)
        self.proj = nn.Parameter(torch.randn(6, 5))
        self.fc = nn.Linear(5 * 6, 3)

    def forward(self, x):
        h = self.conv1d(x)                       # (N, 6, 6)
        h = h @ self.proj                        # (N, 6, 5)
        return self.fc(h.flatten(1))


def test_flops_outside_prunable_layers_are_counted_once():
    model = WithUnprunableOps()
    basis = cost_basis(model, (4, 8))
    assert [layer.name for layer in basis.layers] == ["fc"]
    conv1d = 2 * 6 * 6 * 4 * 3                   # outputs x (in channels x kernel)
    matmul = 2 * 6 * 5 * 6
    assert basis.other_flops == conv1d + matmul
    assert dense_flops(basis) == flop_counter_total(model, (4, 8))
    # Sparsity only scales the prunable layer.
    fc_flops = 2 * 30 * 3
    assert effective_flops(basis, sparsity={"fc": 0.5}) == conv1d + matmul + fc_flops * 45 / 90


def test_count_flops_is_per_batch_and_restores_training_mode():
    model = build_model(ModelSettings("mlp"), (1, 8, 8), 10).train()
    one = count_flops(model, torch.zeros(1, 1, 8, 8))
    assert count_flops(model, torch.zeros(4, 1, 8, 8)) == 4 * one
    assert model.training


def small_model() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, bias=False), nn.ReLU(), nn.Flatten(),
                         nn.Linear(2 * 4 * 4, 4, bias=False), nn.ReLU(), nn.Linear(4, 2))


def test_unstructured_effective_flops_by_hand():
    basis = cost_basis(small_model(), (1, 4, 4))
    sparsity = {"0": 1 / 3, "3": 0.75, "5": 0.0}
    # conv: 16 outputs x 2 channels x 9 MACs = 288 MACs over 18 weights; 6 pruned -> 12 kept
    # fc1: 32 x 4 = 128 MACs = 128 weights; 96 pruned -> 32 kept
    # fc2: 8 MACs, dense
    expected = 2 * (288 * 12 / 18 + 128 * 32 / 128 + 8)
    assert effective_flops(basis, sparsity=sparsity) == pytest.approx(expected)
    assert expected == 2 * (192 + 32 + 8)
    assert dense_flops(basis) == 2 * (288 + 128 + 8)


def test_effective_flops_equal_surviving_multiplications_of_a_pruned_model():
    model = small_model()
    basis = cost_basis(model, (1, 4, 4))
    candidate = Candidate(sparsity={"0": 0.5, "3": 0.9, "5": 0.25}, bits={})
    prune_model(model, candidate)
    masks = current_masks(model)
    # Each surviving weight is used once per output position: 16 for the conv, 1 for the linears.
    positions = {"0": 16, "3": 1, "5": 1}
    surviving_macs = sum(int(masks[name].sum()) * positions[name] for name in masks)
    assert effective_flops(basis, sparsity=candidate.sparsity) == pytest.approx(2 * surviving_macs)
    for layer in basis.layers:
        assert int(masks[layer.name].sum()) == kept_weights(layer, candidate.sparsity[layer.name])


class Block(nn.Module):
    def __init__(self, c_in: int, c_mid: int, c_out: int, classes: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_mid, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(c_mid)
        self.conv2 = nn.Conv2d(c_mid, c_out, 3, padding=1)
        self.fc = nn.Linear(c_out * 16, classes)

    def forward(self, x):
        h = torch.relu(self.bn1(self.conv1(x)))
        return self.fc(torch.relu(self.conv2(h)).flatten(1))


def hand_shrink(model: Block, keep_mid: list[int], keep_out: list[int]) -> Block:
    """Remove channels by hand: the physically smaller model torch-pruning would build."""
    small = Block(model.conv1.in_channels, len(keep_mid), len(keep_out), model.fc.out_features)
    with torch.no_grad():
        small.conv1.weight.copy_(model.conv1.weight[keep_mid])
        small.conv1.bias.copy_(model.conv1.bias[keep_mid])
        for key in ("weight", "bias", "running_mean", "running_var"):
            getattr(small.bn1, key).copy_(getattr(model.bn1, key)[keep_mid])
        small.conv2.weight.copy_(model.conv2.weight[keep_out][:, keep_mid])
        small.conv2.bias.copy_(model.conv2.bias[keep_out])
        fc_cols = torch.arange(model.conv2.out_channels * 16).reshape(-1, 16)[keep_out].flatten()
        small.fc.weight.copy_(model.fc.weight[:, fc_cols])
        small.fc.bias.copy_(model.fc.bias)
    return small


def test_channel_pruned_flops_equal_flop_counter_of_the_smaller_model():
    torch.manual_seed(0)
    model = Block(3, 8, 6, 5)
    small = hand_shrink(model, keep_mid=[0, 2, 5, 7], keep_out=[1, 3, 4])
    basis = cost_basis(small, (3, 4, 4))
    counted = flop_counter_total(small, (3, 4, 4))
    assert dense_flops(basis) == counted
    assert effective_flops(basis, sparsity={}) == counted
    # By hand: conv1 16x4x(3x9) + conv2 16x3x(4x9) + fc 5x48 MACs.
    assert counted == 2 * (16 * 4 * 27 + 16 * 3 * 36 + 5 * 48)
    assert counted < flop_counter_total(model, (3, 4, 4))
    # The smaller model keeps its non-prunable parameters consistent (bn of 4 channels, biases).
    assert basis.other_params == 4 + 4 * 2 + 3 + 5


def test_cost_basis_rejects_negative_counts():
    with pytest.raises(ValueError, match="other_params, other_flops, free_flops and free_elems "
                                         "must be >= 0, got -1, 0, 0 and 0"):
        CostBasis(layers=(), other_params=-1)
    with pytest.raises(ValueError, match=r"free_flops \(5\) are part of other_flops \(4\)"):
        CostBasis(layers=(), other_flops=4, free_flops=5)


def test_channel_pruned_resnet18_flops_equal_flop_counter_of_shrink_model():
    from trainers.pruning.structured import shrink_model

    model = torchvision_model("resnet18")
    shape = (3, 32, 32)
    ratios = {"layer1.0.conv1": 0.5, "layer2.0.conv1": 0.5, "layer3.1.conv1": 0.25, "conv1": 0.5}
    small = shrink_model(model, torch.zeros(1, *shape), ratios)
    basis = cost_basis(small, shape)
    counted = flop_counter_total(small, shape)
    assert dense_flops(basis) == effective_flops(basis, sparsity={}) == counted
    assert basis.other_flops == 0
    assert counted < flop_counter_total(model, shape)
