"""See every matrix product of a forward pass: which weight it used, or that it used none.

Module forward hooks miss weights that are used functionally: torchvision's Swin passes
``self.qkv.weight`` to ``F.linear`` inside a function, and hooks only fire for a module's own
``forward``. ``WeightCalls`` is a ``TorchFunctionMode``: it sees each ``F.linear`` / ``F.conv2d``
call with the tensor it was given and names the layer by the weight's identity, whoever made the
call. Matrix products between activations (attention's Q K^T and attention x V, as
``scaled_dot_product_attention`` or as ``matmul`` / ``bmm`` / ``einsum``) are reported apart with
their FLOPs (counted by ``FlopCounterMode``, the convention of every other count) and the
activation elements they read and write.

A parametrized weight (mask, fake quantization) is a new tensor at every access; inside
``parametrize.cached()`` it is computed once, so ``layer_weights`` and the forward pass see the
same object: run both inside that context.
"""
from __future__ import annotations

import math
from typing import Callable, Mapping

import torch
from torch import nn
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode

from trainers.costs.flops import flop_counter

LAYER_FUNCTIONS = (F.linear, F.conv2d)
PRODUCTS = {
    torch.matmul: "matmul", torch.Tensor.matmul: "matmul", torch.Tensor.__matmul__: "matmul",
    torch.Tensor.__rmatmul__: "matmul", torch.bmm: "bmm", torch.Tensor.bmm: "bmm",
    torch.mm: "mm", torch.Tensor.mm: "mm", torch.baddbmm: "baddbmm",
    torch.Tensor.baddbmm: "baddbmm", torch.einsum: "einsum",
    F.scaled_dot_product_attention: "scaled_dot_product_attention",
}

LayerCall = Callable[[str, torch.Tensor, torch.Tensor, torch.Tensor], None]
ProductCall = Callable[[str, list, torch.Tensor, int, "str | None"], None]


def layer_weights(model: nn.Module, kinds: tuple[type, ...]) -> dict[int, str]:
    """``id(weight) -> module name`` of the modules of the given types (call inside
    ``parametrize.cached()`` when the model is parametrized)."""
    return {id(module.weight): name for name, module in model.named_modules()
            if isinstance(module, kinds) and isinstance(getattr(module, "weight", None),
                                                        torch.Tensor)}


def parameter_names(model: nn.Module) -> dict[int, str]:
    """``id(parameter) -> qualified name`` of every parameter (products with a weight are not
    weight-free)."""
    return {id(param): name for name, param in model.named_parameters()}


class WeightCalls(TorchFunctionMode):
    """Calls ``on_layer(name, input, weight, output)`` for every ``F.linear`` / ``F.conv2d`` whose
    weight is in ``weights``, and ``on_product(op, tensors, output, flops, parameter)`` for every
    other matrix product (``parameter``: the name of a model parameter among its operands, or None
    for a weight-free product).

    Calls made inside an intercepted function are not seen again (torch pops the mode while the
    mode runs), so a product is counted once.
    """

    def __init__(self, weights: Mapping[int, str], on_layer: LayerCall | None = None,
                 on_product: ProductCall | None = None,
                 parameters: Mapping[int, str] | None = None):
        super().__init__()
        self.weights = weights
        self.on_layer = on_layer
        self.on_product = on_product
        self.parameters = parameters or {}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in LAYER_FUNCTIONS:
            weight = args[1] if len(args) > 1 else kwargs.get("weight")
            out = func(*args, **kwargs)
            name = self.weights.get(id(weight))
            if name is not None and self.on_layer is not None:
                source = args[0] if args else kwargs["input"]
                self.on_layer(name, source, weight, out)
            return out
        op = PRODUCTS.get(func)
        if op is None or self.on_product is None:
            return func(*args, **kwargs)
        tensors = [t for t in (*args, *kwargs.values()) if isinstance(t, torch.Tensor)]
        with flop_counter() as counter:
            out = func(*args, **kwargs)
        self.on_product(op, tensors, out, int(counter.get_total_flops()), self._parameter(tensors))
        return out

    def _parameter(self, tensors: list) -> str | None:
        for tensor in tensors:
            for candidate in (tensor, getattr(tensor, "_base", None)):
                if candidate is not None and id(candidate) in self.parameters:
                    return self.parameters[id(candidate)]
        return None


def elements(tensors: list, output: object) -> int:
    """Elements read (operands) and written (output) by one product."""
    outs = output if isinstance(output, (tuple, list)) else (output,)
    return (sum(t.numel() for t in tensors)
            + sum(t.numel() for t in outs if isinstance(t, torch.Tensor)))


def layer_macs(weight: torch.Tensor, output: torch.Tensor) -> int:
    """Multiply-accumulates of one ``F.linear`` / ``F.conv2d`` call: every output element takes
    one row of the weight (a Linear's input features; a convolution's in-channels / groups x
    kernel)."""
    return output.numel() * math.prod(weight.shape[1:])
