"""torchvision classification models by name (``torchvision:resnet18``), fitted to the data.

``num_classes`` defaults to the data set's; when the data has other than 3 input channels the
first convolution is replaced by one with the data's channel count (pretrained RGB filters are
summed over colour for 1-channel data, so a grey image gives the response of its RGB copy); with
pretrained ``weights`` and no ``num_classes`` option the last ``Linear`` gets a fresh head.
Options are passed to ``torchvision.models.get_model`` (e.g. ``weights: DEFAULT``, ``width_mult``).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from trainers.errors import SetupError
from trainers.models.catalog import torchvision_model_names
from trainers.models.settings import TORCHVISION_PREFIX as PREFIX


def build_torchvision_model(name: str, input_shape: tuple[int, ...], num_classes: int,
                            **options: Any) -> nn.Module:
    """``torchvision.models.get_model(name, num_classes=..., **options)`` adapted to the input."""
    from torchvision import models

    arch = name[len(PREFIX):] if name.startswith(PREFIX) else name
    if arch not in torchvision_model_names():
        raise SetupError(f"model.name '{PREFIX}{arch}' is not a torchvision classification model; "
                         f"valid: {', '.join(torchvision_model_names())}")
    kwargs = dict(options)
    if kwargs.get("weights") is None:
        kwargs.pop("weights", None)
        kwargs.setdefault("num_classes", num_classes)
    try:
        model = models.get_model(arch, **kwargs)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise SetupError(f"model '{PREFIX}{arch}' with options {options}: {exc}") from exc
    if "weights" in kwargs and "num_classes" not in options:
        replace_head(model, num_classes)
    if len(input_shape) == 3 and input_shape[0] != 3:
        adapt_input_channels(model, input_shape[0])
    return model


def replace_head(model: nn.Module, num_classes: int) -> nn.Module:
    """Give a pretrained model a fresh last ``Linear`` with ``num_classes`` outputs (in place)."""
    heads = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not heads or heads[-1][1].out_features == num_classes:
        return model
    name, old = heads[-1]
    model.set_submodule(name, nn.Linear(old.in_features, num_classes, bias=old.bias is not None))
    return model


def first_conv(model: nn.Module) -> tuple[str, nn.Conv2d] | None:
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            return name, module
    return None


@torch.no_grad()
def adapt_input_channels(model: nn.Module, channels: int) -> nn.Module:
    """Replace the first ``Conv2d`` with one taking ``channels`` inputs (in place)."""
    found = first_conv(model)
    if found is None or found[1].in_channels == channels:
        return model
    name, old = found
    if old.groups != 1:
        raise SetupError(f"cannot adapt '{name}' (grouped convolution) to {channels} input "
                         f"channels")
    new = nn.Conv2d(channels, old.out_channels, old.kernel_size, stride=old.stride,
                    padding=old.padding, dilation=old.dilation, bias=old.bias is not None,
                    padding_mode=old.padding_mode)
    if channels == 1:
        new.weight.copy_(old.weight.sum(dim=1, keepdim=True))
    if old.bias is not None:
        new.bias.copy_(old.bias)
    model.set_submodule(name, new.to(old.weight.device, old.weight.dtype))
    return model
