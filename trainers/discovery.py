"""Find the prunable layers of a model and their dense cost (MACs per sample)."""
from __future__ import annotations

import math

import torch
from torch import nn

from spaces.layers import LayerInfo

PRUNABLE = {nn.Conv2d: "conv2d", nn.Linear: "linear"}


def layer_kind(module: nn.Module) -> str | None:
    for cls, kind in PRUNABLE.items():
        if type(module) is cls or isinstance(module, cls):
            return kind
    return None


def layer_macs(module: nn.Module, output: torch.Tensor) -> int:
    """Multiply-accumulates per sample of one Conv2d / Linear call, from its output shape."""
    per_sample_out = math.prod(output.shape[1:])
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return per_sample_out * (module.in_channels // module.groups) * kh * kw
    return per_sample_out * module.in_features


@torch.no_grad()
def discover_layers(model: nn.Module, input_shape: tuple[int, ...]) -> list[LayerInfo]:
    """All Conv2d / Linear layers in execution order with params and MACs for one sample.

    The last layer executed is marked as the classifier. Layers called several times add up.
    """
    macs: dict[str, int] = {}
    elems: dict[str, tuple[int, int]] = {}
    order: list[str] = []
    handles = []
    for name, module in model.named_modules():
        if layer_kind(module) is None:
            continue

        def hook(mod, _inp, out, name=name):
            macs[name] = macs.get(name, 0) + layer_macs(mod, out)
            n_in, n_out = elems.get(name, (0, 0))
            elems[name] = (n_in + math.prod(_inp[0].shape[1:]), n_out + math.prod(out.shape[1:]))
            if name not in order:
                order.append(name)

        handles.append(module.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        model(torch.zeros((1, *input_shape), device=device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    modules = dict(model.named_modules())
    layers = []
    for i, name in enumerate(order):
        module = modules[name]
        weight = _weight(module)
        layers.append(LayerInfo(
            name=name, kind=layer_kind(module), weight_shape=tuple(weight.shape),
            params=weight.numel(), macs=macs[name], is_classifier=(i == len(order) - 1),
            in_elems=elems[name][0], out_elems=elems[name][1]))
    return layers


def _weight(module: nn.Module) -> torch.Tensor:
    # With parametrizations registered, ``module.weight`` is computed; the original keeps the shape.
    return module.weight
