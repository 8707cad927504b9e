"""Find the prunable layers of a model, their dense cost (MACs per sample), the work outside them
and the weight matrices that are not searched (with the reason).

One forward pass of one zero sample under ``trainers.weight_calls.WeightCalls``: every
``Conv2d`` / ``Linear`` weight that reaches ``F.conv2d`` / ``F.linear`` is found, also when the
call is made outside the module's own ``forward`` (torchvision's Swin uses its ``qkv`` and ``proj``
weights that way; module hooks never see them). ``nn.MultiheadAttention`` is not a layer here: the
model builders split it into four ``Linear`` layers first (``trainers.models.attention``).

Tied weights (one Parameter held by several modules: ``out.weight = proj.weight``, a GPT's output
head and token embedding) are left out of the search: a mask or quantizer attached to one holder
would not reach the others during the search, and folding it at export would write into the
shared tensor, so the exported model would not be the searched one. Such layers stay dense and at
full precision; their work is fixed cost, and ``others`` says why they are not searched.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn.utils import parametrize

from spaces.layers import LayerInfo
from trainers.models.attention import unsupported_reason
from trainers.weight_calls import WeightCalls, elements, layer_macs, layer_weights, parameter_names

PRUNABLE = {nn.Conv2d: "conv2d", nn.Linear: "linear"}


def layer_kind(module: nn.Module) -> str | None:
    for cls, kind in PRUNABLE.items():
        if type(module) is cls or isinstance(module, cls):
            return kind
    return None


@dataclass(frozen=True)
class OtherWeight:
    """A weight matrix (a parameter of 2 or more dimensions) that is not a searched layer."""

    name: str
    shape: tuple[int, ...]
    reason: str


@dataclass
class Discovery:
    """What one forward pass of one sample shows.

    Attributes:
        layers: the prunable layers in execution order (the last one is the classifier).
        free_flops: FLOPs of matrix products between activations (attention's Q K^T and
            attention x V): no weight, so pruning removes none of them.
        free_elems: activation elements those products read and write.
        free_by_op: ``free_flops`` by operation (``scaled_dot_product_attention``, ``matmul``, ...).
        others: the weight matrices that are not searched, with the reason.
        classifier: the Conv2d / Linear layer executed last (the model's output), searched or
            not: a tied output head is not a searched layer, and its outputs must not be pruned.
        tied: modules whose weight another module holds too, with those modules (not searched).
    """

    layers: list[LayerInfo]
    free_flops: int = 0
    free_elems: int = 0
    free_by_op: dict[str, int] = field(default_factory=dict)
    others: list[OtherWeight] = field(default_factory=list)
    classifier: str | None = None
    tied: dict[str, list[str]] = field(default_factory=dict)


class _Recorder:
    def __init__(self) -> None:
        self.macs: dict[str, int] = {}
        self.elems: dict[str, tuple[int, int]] = {}
        self.used: dict[str, str] = {}           # parameter name -> product it entered
        self.found = Discovery(layers=[])

    def layer(self, name: str, source: torch.Tensor, weight: torch.Tensor,
              out: torch.Tensor) -> None:
        self.macs[name] = self.macs.get(name, 0) + layer_macs(weight, out)
        n_in, n_out = self.elems.get(name, (0, 0))
        self.elems[name] = (n_in + source.numel(), n_out + out.numel())

    def product(self, op: str, tensors: list, out: object, flops: int,
                parameter: str | None) -> None:
        if parameter is not None:          # a product with a weight: not weight-free
            self.used.setdefault(parameter, op)
            return
        self.found.free_flops += flops
        self.found.free_elems += elements(tensors, out)
        self.found.free_by_op[op] = self.found.free_by_op.get(op, 0) + flops


def shared_parameters(model: nn.Module) -> dict[str, list[str]]:
    """Qualified parameter name -> the other modules holding the same Parameter, for every
    parameter that several modules hold (tied weights). One module registered under two names,
    or called twice, shares nothing: it is one module."""
    holders: dict[int, list[tuple[str, str]]] = {}
    for module_name, module in model.named_modules():
        for param_name, param in module.named_parameters(recurse=False):
            holders.setdefault(id(param), []).append((module_name, param_name))
    shared = {}
    for found in holders.values():
        for module_name, param_name in found:
            others = [other for other, _ in found if other != module_name]
            if others:
                shared[f"{module_name}.{param_name}" if module_name else param_name] = others
    return shared


def tied_layers(model: nn.Module) -> dict[str, list[str]]:
    """Conv2d / Linear modules whose weight other modules hold too -> those modules."""
    shared = shared_parameters(model)
    return {name: shared[f"{name}.weight" if name else "weight"]
            for name, module in model.named_modules()
            if layer_kind(module) is not None and (f"{name}.weight" if name else "weight") in shared}


@torch.no_grad()
def discover(model: nn.Module, input_shape: tuple[int, ...]) -> Discovery:
    """Prunable layers, weight-free products and unsearched weight matrices of ``model`` for one
    sample (a batch of 1 zero input; eval mode, restored after). Layers called several times add
    up; layers with a tied weight are not searched (``Discovery.tied``)."""
    record = _Recorder()
    was_training = model.training
    model.eval()
    try:
        with parametrize.cached():
            weights = layer_weights(model, tuple(PRUNABLE))
            device = next((p.device for p in model.parameters()), torch.device("cpu"))
            with WeightCalls(weights, record.layer, record.product, parameter_names(model)):
                model(torch.zeros((1, *input_shape), device=device))
    finally:
        model.train(was_training)
    modules = dict(model.named_modules())
    called = list(record.macs)
    tied = tied_layers(model)
    classifier = called[-1] if called else None
    order = [name for name in called if name not in tied]
    for name in order:
        module = modules[name]
        weight = module.weight
        record.found.layers.append(LayerInfo(
            name=name, kind=layer_kind(module), weight_shape=tuple(weight.shape),
            params=weight.numel(), macs=record.macs[name], is_classifier=(name == classifier),
            in_elems=record.elems[name][0], out_elems=record.elems[name][1]))
    record.found.classifier = classifier
    record.found.tied = tied
    record.found.others = _other_weights(model, set(order), record.used, shared_parameters(model))
    return record.found


def discover_layers(model: nn.Module, input_shape: tuple[int, ...]) -> list[LayerInfo]:
    """All Conv2d / Linear layers in execution order with params and MACs for one sample.

    The last layer executed is marked as the classifier. Layers called several times add up.
    """
    return discover(model, input_shape).layers


def _other_weights(model: nn.Module, layers: set[str], used: dict[str, str],
                   shared: dict[str, list[str]]) -> list[OtherWeight]:
    """Every parameter of 2+ dimensions that is not the weight of a found layer, and why."""
    others = []
    for module_name, module in model.named_modules():
        if ".parametrizations." in f".{module_name}.":
            continue                       # the originals of parametrized (masked) tensors
        for param_name, param in module.named_parameters(recurse=False):
            if param.dim() < 2 or (module_name in layers and param_name == "weight"):
                continue
            name = f"{module_name}.{param_name}" if module_name else param_name
            reason = (f"weight shared with {', '.join(shared[name])}: left out of the search"
                      if name in shared else _reason(module, param_name, name, used))
            others.append(OtherWeight(name, tuple(param.shape), reason))
    return others


def _reason(module: nn.Module, param_name: str, name: str, used: dict[str, str]) -> str:
    if isinstance(module, nn.MultiheadAttention):
        return (unsupported_reason(module)
                or "packed nn.MultiheadAttention projection: build the model through the study "
                   "(it splits q/k/v) or call trainers.models.attention.split_attention")
    if isinstance(module, nn.Embedding):
        return "embedding: a table lookup, no multiplications"
    if isinstance(module, nn.RNNBase):   # FlopCounterMode counts a GRU; the CPU LSTM kernel not
        return (f"recurrent layer ({type(module).__name__}): not a searched kind; "
                + ("FlopCounterMode has no formula for its CPU kernel: its work is not in the "
                   "FLOPs" if isinstance(module, nn.LSTM) else "counted as fixed cost"))
    if layer_kind(module) is not None:
        return "not called with its weight in the forward pass"
    if name in used:
        return f"used in a {used[name]}, not by a Conv2d / Linear layer: counted as fixed cost"
    if type(module).__name__.startswith("Conv"):
        return f"{type(module).__name__} is not a searched kind (Conv2d, Linear): fixed cost"
    return "not used in a matrix product (added or looked up: a token, position or bias table)"
