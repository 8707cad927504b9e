"""Built-in models sized for small (8x8) inputs."""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn


class MaxPool2d(nn.MaxPool2d):
    """``nn.MaxPool2d`` that, without autograd (evaluation), pools a CPU tensor in channels-last
    layout and hands it back in the input's: the same values (a maximum is exact). In torch 2.14
    on CPU the NCHW kernel is about ten times slower than the channels-last one, so it took more
    than half of an evaluation pass of the built-in CNN (13.5 -> 5.7 ms for 360 digits at one
    thread). With autograd the two layout changes cost what they save, so training is unchanged."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() or self.return_indices or x.device.type != "cpu" or \
                x.dim() != 4 or x.is_contiguous(memory_format=torch.channels_last):
            return super().forward(x)
        return super().forward(x.contiguous(memory_format=torch.channels_last)).contiguous()


class SmallCNN(nn.Module):
    """Three 3x3 convolutions and two linear layers; about 0.64 M MACs per 8x8 sample."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 16,
                 input_size: int = 8):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), MaxPool2d(2),
            nn.Conv2d(2 * width, 4 * width, 3, padding=1), nn.ReLU(), MaxPool2d(2),
        )
        spatial = max(input_size // 4, 1)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(4 * width * spatial * spatial, 128), nn.ReLU(),
            nn.Linear(128, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class MLP(nn.Module):
    """Flatten, then hidden layers with ReLU, then the classifier."""

    def __init__(self, in_features: int = 64, num_classes: int = 10,
                 hidden: tuple[int, ...] = (128, 64)):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def build_cnn(input_shape: tuple[int, ...], num_classes: int, **opts: Any) -> nn.Module:
    """The ``cnn`` model for the data's input shape (``model.options`` passed on)."""
    return SmallCNN(in_channels=input_shape[0], num_classes=num_classes,
                    input_size=input_shape[-1], **opts)


def build_mlp(input_shape: tuple[int, ...], num_classes: int, **opts: Any) -> nn.Module:
    """The ``mlp`` model for the data's input shape (``model.options`` passed on)."""
    if "hidden" in opts:
        opts = {**opts, "hidden": tuple(opts["hidden"])}
    return MLP(in_features=math.prod(input_shape), num_classes=num_classes, **opts)
