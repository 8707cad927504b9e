"""torchvision models by name: fitted to the data's classes and channels, layers discovered."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from trainers.discovery import discover_layers
from trainers.errors import SetupError
from trainers.models import ModelSettings, build_model, is_known_model_name
from trainers.models.torchvision_models import adapt_input_channels

# conv + linear layers: resnet18 has 20 convolutions (3 of them 1x1 shortcuts) and one fc;
# mobilenet_v2 has 52 convolutions and one classifier.
EXPECTED = {"resnet18": (21, "fc"), "mobilenet_v2": (53, "classifier.1")}


@pytest.mark.parametrize("arch", sorted(EXPECTED))
def test_discovers_every_layer_on_32x32_inputs(arch):
    torch.manual_seed(0)
    model = build_model(ModelSettings(f"torchvision:{arch}"), (3, 32, 32), 10)
    layers = discover_layers(model, (3, 32, 32))
    count, head = EXPECTED[arch]
    assert len(layers) == count
    assert layers[-1].name == head and layers[-1].is_classifier
    assert layers[-1].weight_shape[0] == 10
    assert sum(layer.is_classifier for layer in layers) == 1
    assert all(layer.macs > 0 for layer in layers)
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_one_channel_data_gets_a_one_channel_stem():
    model = build_model(ModelSettings("torchvision:resnet18"), (1, 28, 28), 7)
    assert model.conv1.in_channels == 1 and model.conv1.kernel_size == (7, 7)
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 7)


def test_adapting_pretrained_filters_sums_colours():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, bias=True), nn.ReLU())
    rgb = model[0].weight.detach().clone()
    bias = model[0].bias.detach().clone()
    adapt_input_channels(model, 1)
    assert model[0].in_channels == 1
    assert torch.allclose(model[0].weight, rgb.sum(dim=1, keepdim=True))
    assert torch.equal(model[0].bias, bias)
    grey = torch.rand(1, 1, 5, 5)
    assert torch.allclose(model(grey), nn.functional.relu(
        nn.functional.conv2d(grey.expand(1, 3, 5, 5), rgb, bias)), atol=1e-6)


def test_options_reach_torchvision_and_bad_names_are_listed():
    model = build_model(ModelSettings("torchvision:mobilenet_v2", {"width_mult": 0.5}),
                        (3, 32, 32), 4)
    assert model.features[0][0].out_channels == 16       # 32 * 0.5
    assert is_known_model_name("torchvision:resnet18")
    assert not is_known_model_name("torchvision:resnet19")
    with pytest.raises(SetupError, match="not a torchvision classification model; valid: .*resnet18"):
        build_model(ModelSettings("torchvision:resnet19"), (3, 32, 32), 10)
    with pytest.raises(SetupError, match="options .*'depth'"):
        build_model(ModelSettings("torchvision:resnet18", {"depth": 3}), (3, 32, 32), 10)
