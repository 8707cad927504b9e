"""Physical channel removal: equivalent to the masks, smaller, same output shape."""
from __future__ import annotations

import pytest
import torch
import torchvision

from spaces.candidate import Candidate
from trainers.discovery import discover_layers
from trainers.models import SmallCNN
from trainers.pruning import Pruner, current_masks, folded_copy, shrink_model


def _randomize_batchnorm(model):
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-1, 1)


def _totals(model, shape):
    layers = discover_layers(model, shape)
    return sum(l.params for l in layers), sum(l.macs for l in layers)


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["resnet18", "mobilenet_v2"])
def test_torchvision_masked_equals_shrunk_and_is_smaller(arch):
    torch.manual_seed(0)
    model = getattr(torchvision.models, arch)(weights=None, num_classes=10)
    _randomize_batchnorm(model)
    model.eval()
    shape = (3, 16, 16)      # small inputs keep the test fast; the graph is the same
    layers = discover_layers(model, shape)
    candidate = Candidate(sparsity={l.name: 0.5 for l in layers}, bits={}, criterion="l2",
                          granularity="channel")
    masks = Pruner(candidate, input_shape=shape).step(model)
    x = torch.randn(2, *shape)
    with torch.no_grad():
        masked_out = model(x)
    small = shrink_model(model, x[:1], masks.channels)
    with torch.no_grad():
        small_out = small(x)
    assert small_out.shape == (2, 10)
    assert torch.allclose(masked_out, small_out, atol=1e-4)
    params, macs = _totals(small, shape)
    dense_params, dense_macs = sum(l.params for l in layers), sum(l.macs for l in layers)
    # Half the channels of every layer: about a quarter of the weights and MACs remain.
    assert 0.2 < params / dense_params < 0.32
    assert 0.2 < macs / dense_macs < 0.32
    assert hasattr(model, "fc" if arch == "resnet18" else "classifier")
    assert current_masks(model)                     # the original keeps its masks


def test_small_cnn_ratios_halve_parameters():
    torch.manual_seed(0)
    model = SmallCNN(1, 10, width=16)
    shape = (1, 8, 8)
    names = [l.name for l in discover_layers(model, shape)]
    small = shrink_model(model, torch.zeros(1, *shape), {n: 0.5 for n in names})
    params, macs = _totals(small, shape)
    dense_params, dense_macs = _totals(model, shape)
    assert small(torch.zeros(3, *shape)).shape == (3, 10)
    assert small.classifier[3].out_features == 10
    assert small.features[0].out_channels == 8
    # Every hidden layer loses half its outputs and half its inputs; the first conv keeps its one
    # input channel and the classifier its 10 outputs, so a bit more than a quarter remains.
    assert 0.24 < params / dense_params < 0.3
    assert 0.24 < macs / dense_macs < 0.3
    assert _totals(model, shape) == (dense_params, dense_macs)      # original untouched


def test_shrink_accepts_weight_masks_and_rejects_bad_input():
    model = SmallCNN(1, 4, width=4)
    keep = torch.ones_like(model.features[0].weight, dtype=torch.bool)
    keep[1] = False
    small = shrink_model(model, torch.zeros(1, 1, 8, 8), {"features.0": keep})
    assert small.features[0].out_channels == 3
    with pytest.raises(ValueError, match="has 3 channels, the layer has 4"):
        shrink_model(model, torch.zeros(1, 1, 8, 8), {"features.0": torch.ones(3, dtype=torch.bool)})
    with pytest.raises(ValueError, match="needs gradients"):
        shrink_model(model, torch.zeros(1, 1, 8, 8), {"features.0": 0.5}, criterion="taylor")
    with pytest.raises(ValueError, match="not a Conv2d / Linear layer"):
        shrink_model(model, torch.zeros(1, 1, 8, 8), {"features.1": 0.5})


def test_folded_copy_leaves_the_parametrized_original_working():
    model = SmallCNN(1, 4, width=4)
    names = ["features.0", "features.2"]
    Pruner(Candidate(sparsity={n: 0.5 for n in names}, bits={n: 4 for n in names})).step(model)
    copy = folded_copy(model)
    x = torch.randn(2, 1, 8, 8)
    assert torch.allclose(copy(x), model(x))
    assert not hasattr(copy.features[0], "parametrizations")
    assert current_masks(model)
