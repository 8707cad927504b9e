"""FLOPs per sample, in the convention of ``torch.utils.flop_counter.FlopCounterMode``.

Convention: 2 FLOPs per multiply-accumulate of a matrix product or convolution; bias additions,
normalisation, activations, softmax and pooling are not counted (FlopCounterMode does not count them
either). ``count_flops`` asks FlopCounterMode directly; ``dense_flops`` / ``effective_flops``
compute the same numbers from a ``CostBasis`` without running the model, and a test holds them
equal to FlopCounterMode on torchvision and built-in models, transformers included.

Two gaps of FlopCounterMode on the CPU are closed here (``flop_counter``), so that attention is
counted wherever it runs: it has no formula for the CPU kernel of
``scaled_dot_product_attention`` (``_scaled_dot_product_flash_attention_for_cpu``; the CUDA
kernels have one), so we register its own SDPA formula for it (Q K^T plus attention x V, causal
masks counted in full, as on CUDA); and ``nn.MultiheadAttention``'s inference fast path is one
native kernel it does not count at all, so ``count_flops`` turns the fast path off while counting.
"""
from __future__ import annotations

from typing import Mapping

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from trainers.costs.basis import BasisLike, as_basis, kept_weights

FLOPS_PER_MAC = 2




def _cpu_attention_flops(query_shape, key_shape, value_shape, *args, out_shape=None,
                         **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


CPU_ATTENTION = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_attention_flops}


def flop_counter() -> FlopCounterMode:
    """``FlopCounterMode`` (silent) that also counts the CPU kernel of scaled-dot-product
    attention."""
    return FlopCounterMode(display=False, custom_mapping=CPU_ATTENTION)


@torch.no_grad()
def count_flops(model: nn.Module, example_input: torch.Tensor) -> int:
    """FLOPs of one forward pass of ``model`` on ``example_input`` (the whole batch), eval mode.

    Divide by the batch size for a per-sample figure. The model's train/eval mode is restored.
    """
    was_training = model.training
    fast_path = torch.backends.mha.get_fastpath_enabled()
    model.eval()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with flop_counter() as counter:
            model(example_input)
    finally:
        torch.backends.mha.set_fastpath_enabled(fast_path)
        model.train(was_training)
    return int(counter.get_total_flops())


def dense_flops(basis: BasisLike) -> int:
    """FLOPs per sample of the model run by dense kernels (zeros in the weights still cost)."""
    basis = as_basis(basis)
    return FLOPS_PER_MAC * sum(layer.macs for layer in basis.layers) + basis.other_flops


def effective_flops(basis: BasisLike, *, sparsity: Mapping[str, float]) -> float:
    """Sparsity-aware FLOPs per sample: each prunable layer's MACs times its kept-weight fraction.

    This is the work a sparse kernel would do (a dense kernel on a masked model still does
    ``dense_flops``). Layers missing from ``sparsity`` and FLOPs outside the prunable layers count
    as dense.
    """
    basis = as_basis(basis)
    total = float(basis.other_flops)
    for layer in basis.layers:
        kept = kept_weights(layer, sparsity.get(layer.name, 0.0))
        total += FLOPS_PER_MAC * layer.macs * kept / layer.params
    return total
