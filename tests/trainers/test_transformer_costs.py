"""Transformers: every weight matrix found, every FLOP counted (against FlopCounterMode), and the
weight-free work kept apart from what pruning can remove."""
from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from trainers.costs import cost_basis, dense_flops, effective_flops
from trainers.costs.energy import energy_breakdown, load_profile
from trainers.discovery import discover
from trainers.models import ModelSettings, build_model
from trainers.models.attention import split_attention


def _cpu_attention(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs):
    return sdpa_flop_count(query_shape, key_shape, value_shape)


CPU_SDPA = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu


def reference_counts(model: nn.Module, shape: tuple[int, ...]) -> tuple[int, int]:
    """FlopCounterMode itself on the model as given (``nn.MultiheadAttention`` unsplit, its fast
    path off), with torch's own SDPA formula for the CPU kernel it lacks: (total, the part of the
    CPU attention kernel, which FlopCounterMode as shipped leaves out)."""
    model.eval()
    fast = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with torch.no_grad(), FlopCounterMode(display=False,
                                              custom_mapping={CPU_SDPA: _cpu_attention}) as counter:
            model(torch.zeros(1, *shape))
    finally:
        torch.backends.mha.set_fastpath_enabled(fast)
    return counter.get_total_flops(), counter.get_flop_counts()["Global"].get(CPU_SDPA, 0)


def reference_flops(model: nn.Module, shape: tuple[int, ...]) -> int:
    return reference_counts(model, shape)[0]


def test_vit_b_16_dense_flops_equal_flop_counter_mode_with_attention():
    torch.manual_seed(0)
    model = torchvision.models.vit_b_16(weights=None)
    shape = (3, 224, 224)
    expected, sdpa = reference_counts(model, shape)
    shipped = expected - sdpa
    split_attention(model)
    basis = cost_basis(model, shape)
    assert dense_flops(basis) == expected
    # What FlopCounterMode misses on the CPU is exactly Q K^T and attention x V:
    # 12 blocks x 2 products x 2 FLOPs x 12 heads x 197 x 197 x 64.
    attention = 12 * 2 * 2 * 197 * 197 * 768
    assert expected - shipped == attention
    assert basis.free_flops == basis.other_flops == attention
    # 1 patch embedding + 12 x (q, k, v, out, 2 MLP) + head: every weight matrix is a layer.
    assert len(basis.layers) == 74
    assert 2 * sum(layer.macs for layer in basis.layers) == shipped


def test_swin_t_functional_projections_found_and_flops_equal_flop_counter_mode():
    torch.manual_seed(0)
    model = torchvision.models.swin_t(weights=None)
    shape = (3, 224, 224)
    basis = cost_basis(model, shape)
    names = {layer.name for layer in basis.layers}
    # Swin passes qkv.weight / proj.weight to F.linear itself: no module hook ever fires.
    attention = [name for name, m in model.named_modules() if type(m).__name__.startswith(
        "ShiftedWindowAttention")]
    assert len(attention) == 12
    assert all(f"{a}.qkv" in names and f"{a}.proj" in names for a in attention)
    assert dense_flops(basis) == reference_flops(model, shape)
    # Its Q K^T and attention x V are explicit matmuls: weight-free, the only fixed work.
    assert basis.free_flops == basis.other_flops > 0


def test_text_model_flops_equal_flop_counter_mode_and_attention_is_fixed_cost():
    context, dim, layers = 32, 64, 2
    model = build_model(ModelSettings("tiny_gpt", {"dim": dim, "layers": layers}), (context,), 97)
    basis = cost_basis(model, (context,))
    assert dense_flops(basis) == reference_flops(model, (context,))
    # Causal attention is counted in full (FlopCounterMode's convention for every SDPA kernel).
    attention = layers * 2 * 2 * context * context * dim
    assert basis.free_flops == basis.other_flops == attention
    # Sparsity shrinks the layers' share and nothing else.
    half = {layer.name: 0.5 for layer in basis.layers}
    prunable = dense_flops(basis) - attention
    assert effective_flops(basis, sparsity=half) == pytest.approx(attention + prunable / 2)
    # Energy: the products' arithmetic and their activation traffic are counted, and stay.
    profile = load_profile()
    dense = energy_breakdown(basis, {}, {}, profile)
    pruned = energy_breakdown(basis, half, {}, profile)
    without = energy_breakdown(type(basis)(basis.layers, basis.other_params), {}, {}, profile)
    assert dense.compute_pj - without.compute_pj == pytest.approx(
        attention / 2 * profile.mac_pj(32, 32))
    assert dense.activation_pj > without.activation_pj
    assert pruned.compute_pj > (dense.compute_pj - attention / 2 * profile.mac_pj(32, 32)) / 2


class HandWrittenAttention(nn.Module):
    """A Hugging Face-style block: separate q / k / v Linear layers and explicit matmuls."""

    def __init__(self, dim: int = 16, heads: int = 4):
        super().__init__()
        self.heads = heads
        self.query, self.key, self.value = (nn.Linear(dim, dim) for _ in range(3))
        self.dense = nn.Linear(dim, dim)
        self.classifier = nn.Linear(dim, 3)

    def forward(self, x):
        n, length, dim = x.shape

        def split(t):
            return t.view(n, length, self.heads, -1).transpose(1, 2)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        probs = torch.softmax(q @ k.transpose(-1, -2) / (dim // self.heads) ** 0.5, dim=-1)
        context = torch.matmul(probs, v).transpose(1, 2).reshape(n, length, dim)
        return self.classifier(self.dense(context).mean(dim=1))


def test_hand_written_q_k_v_linears_work_as_they_are():
    model = HandWrittenAttention()
    found = discover(model, (5, 16))
    assert [layer.name for layer in found.layers] == ["query", "key", "value", "dense",
                                                      "classifier"]
    # Q K^T and probs x V: 2 x (4 heads x 5 x 5 x 4) MACs, weight-free.
    assert found.free_flops == 2 * 2 * 4 * 5 * 5 * 4
    assert set(found.free_by_op) == {"matmul"}
    basis = cost_basis(model, (5, 16))
    assert dense_flops(basis) == reference_flops(model, (5, 16))
    assert basis.free_flops == basis.other_flops


def test_unsplit_multihead_attention_is_listed_as_not_searched_with_the_reason():
    model = nn.Sequential(nn.Linear(8, 8), nn.MultiheadAttention(8, 2, batch_first=True))

    class Wrapper(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = model

        def forward(self, x):
            return self.inner[1](self.inner[0](x), x, x, need_weights=False)[0]

    found = discover(Wrapper(), (3, 8))
    reasons = {other.name: other.reason for other in found.others}
    assert "split_attention" in reasons["inner.1.in_proj_weight"]
    # The same model built through the study splits it: q, k, v and out are layers.
    wrapper = Wrapper()
    assert split_attention(wrapper) == {}
    names = [layer.name for layer in discover(wrapper, (3, 8)).layers]
    assert names == ["inner.0"] + [f"inner.1.{p}_proj" for p in ("q", "k", "v", "out")]


def test_discovery_of_a_masked_model_sees_the_same_layers_and_no_originals():
    from spaces.candidate import Candidate
    from trainers.pruning import prune_model

    model = build_model(ModelSettings("tiny_gpt", {"dim": 16, "layers": 1}), (8,), 97)
    plain = discover(model, (8,))
    names = [layer.name for layer in plain.layers]
    prune_model(model, Candidate(sparsity={n: 0.5 for n in names[:-1]}, bits={names[0]: 4}))
    masked = discover(model, (8,))
    assert [layer.name for layer in masked.layers] == names
    assert [layer.macs for layer in masked.layers] == [layer.macs for layer in plain.layers]
    assert [o.name for o in masked.others] == ["tokens.weight", "positions.weight"]
