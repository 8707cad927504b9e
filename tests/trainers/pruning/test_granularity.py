"""Masks per granularity: exact counts, N:M patterns, coupled channels, monotone re-pruning."""
from __future__ import annotations

import torch
from torch import nn

from spaces.candidate import Candidate
from trainers.models import SmallCNN
from trainers.pruning import Pruner, current_masks, current_param_masks, get_criterion, nm_mask
from trainers.pruning.granularity import Unstructured

CNN_LAYERS = ["features.0", "features.2", "features.5", "classifier.1", "classifier.3"]


def test_nm_mask_hand_computed_linear():
    scores = torch.tensor([[4.0, 1.0, 3.0, 2.0, 0.1, 0.2, 0.4, 0.3]])
    assert nm_mask(scores, 2, 4).tolist() == [[True, False, True, False,
                                               False, False, True, True]]


def test_nm_mask_groups_conv_weights_over_input_channels():
    # out=1, in=4, 1x2 kernel: blocks run over the 4 input channels at each kernel position.
    scores = torch.tensor([[[[1.0, 9.0]], [[2.0, 8.0]], [[3.0, 7.0]], [[4.0, 6.0]]]])
    mask = nm_mask(scores, 2, 4)
    assert mask.shape == scores.shape
    assert mask[0, :, 0, 0].tolist() == [False, False, True, True]
    assert mask[0, :, 0, 1].tolist() == [True, True, False, False]


def test_nm_exact_counts_on_divisible_layer():
    torch.manual_seed(0)
    layer = nn.Linear(16, 6)
    candidate = Candidate(sparsity={"0": 0.5}, bits={}, granularity="n:m")
    model = nn.Sequential(layer)
    Pruner(candidate).step(model)
    mask = current_masks(model)["0"]
    assert mask.reshape(6, 4, 4).sum(dim=2).eq(2).all()       # exactly 2 of every 4 kept


def test_unstructured_previous_masks_stay_pruned():
    weight = torch.tensor([[0.1, 5.0, 3.0, 4.0]])
    previous = Unstructured().masks({"l": weight}, {"l": 0.25}, get_criterion("random"), seed=0)
    # Magnitude would keep the weight random pruned; it must stay pruned anyway.
    later = Unstructured().masks({"l": weight}, {"l": 0.5}, get_criterion("magnitude"), seed=0,
                                 previous=previous)
    assert not (later.weights["l"] & ~previous.weights["l"]).any()
    assert int((~later.weights["l"]).sum()) == 2


def test_channel_masks_exact_counts_and_biases_zeroed():
    torch.manual_seed(0)
    model = SmallCNN(1, 4, width=8)
    sparsity = {"features.0": 0.5, "features.2": 0.25, "classifier.1": 0.75, "classifier.3": 0.5}
    candidate = Candidate(sparsity=sparsity, bits={}, criterion="l2", granularity="channel")
    masks = Pruner(candidate, input_shape=(1, 8, 8)).step(model)
    weights = current_masks(model)
    assert int((~masks.channels["features.0"]).sum()) == 4
    assert int((~masks.channels["features.2"]).sum()) == 4
    assert int((~masks.channels["classifier.1"]).sum()) == 96
    assert "classifier.3" not in masks.channels         # the output layer keeps all its classes
    for name, keep in masks.channels.items():
        rows = weights[name].reshape(weights[name].shape[0], -1)
        assert torch.equal(rows.any(dim=1), keep)       # whole rows masked, nothing else
        bias = current_param_masks(model)[(name, "bias")]
        assert torch.equal(bias, keep)
    x = torch.randn(5, 1, 8, 8)
    out = model.features[0](x)
    assert torch.all(out[:, ~masks.channels["features.0"]] == 0)


def test_channel_batchnorm_is_masked_with_its_conv():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 3),
                          nn.Flatten(), nn.LazyLinear(2))
    model(torch.zeros(1, 3, 8, 8))
    with torch.no_grad():
        model[1].bias.fill_(1.0)
    candidate = Candidate(sparsity={"0": 0.5}, bits={}, criterion="fpgm", granularity="channel")
    masks = Pruner(candidate, input_shape=(3, 8, 8)).step(model)
    gone = ~masks.channels["0"]
    assert int(gone.sum()) == 4
    params = current_param_masks(model)
    assert torch.equal(params[("1", "weight")], masks.channels["0"])
    assert torch.equal(params[("1", "bias")], masks.channels["0"])
    model.train()
    assert torch.all(model[:3](torch.randn(4, 3, 8, 8))[:, gone] == 0)
