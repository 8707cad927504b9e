"""Attention weights take the same masks and fake quantization as every layer; channel pruning
removes whole heads (and MLP neurons), physically at export, with the masked model's outputs."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from spaces.candidate import Candidate
from trainers.export_form import export_state, rebuild_exported
from trainers.models import ModelSettings, build_model
from trainers.pruning import Pruner, current_masks, prune_model, shrink_model

VIT = ("vit", (1, 8, 8), 10)
GPT = ("tiny_gpt", (16,), 97)
Q, K, V = (f"encoder.layers.encoder_layer_0.self_attention.{p}_proj" for p in "qkv")


def _model(spec, **options):
    torch.manual_seed(0)
    name, shape, classes = spec
    model = build_model(ModelSettings(name, options), shape, classes).eval()
    if name == "vit":            # torchvision starts the head at zero: every output would be 0
        nn.init.normal_(model.heads.head.weight)
    return model


def _input(spec, n=4):
    _, shape, classes = spec
    if len(shape) == 1:
        return torch.randint(0, classes, (n, *shape)).float()
    return torch.randn(n, *shape)


@pytest.mark.parametrize("granularity", ["unstructured", "n:m"])
def test_attention_projections_take_masks_and_fake_quantization(granularity):
    model = _model(VIT)
    names = [Q, K, V, "encoder.layers.encoder_layer_0.self_attention.out_proj"]
    x = _input(VIT)
    before = model(x)
    candidate = Candidate(sparsity={n: 0.5 for n in names}, bits={n: 4 for n in names},
                          granularity=granularity)
    prune_model(model, candidate)
    modules = dict(model.named_modules())
    for name in names:
        module = modules[name]
        assert parametrize.is_parametrized(module, "weight")
        weight = module.weight.detach()
        assert int((weight == 0).sum()) >= weight.numel() // 2
        if granularity == "n:m":   # 2 of every 4 along the input features
            assert (weight.reshape(weight.shape[0], -1, 4) != 0).sum(-1).max() <= 2
        scale = weight.abs().amax(dim=1, keepdim=True) / 7
        assert torch.allclose(weight / scale, (weight / scale).round(), atol=1e-4)
    assert not torch.allclose(model(x), before)


def test_masks_reach_a_weight_that_is_used_functionally():
    class Functional(nn.Module):           # Swin-style: F.linear with the Linear's weight
        def __init__(self):
            super().__init__()
            self.qkv = nn.Linear(6, 6)
            self.head = nn.Linear(6, 2)

        def forward(self, x):
            return self.head(nn.functional.linear(x, self.qkv.weight, self.qkv.bias))

    torch.manual_seed(0)
    model = Functional()
    prune_model(model, Candidate(sparsity={"qkv": 0.5}, bits={}))
    x = torch.randn(3, 6)
    masked = model.qkv.weight.detach()
    assert int((masked == 0).sum()) == 18
    expected = model.head(x @ masked.T + model.qkv.bias)
    assert torch.allclose(model(x), expected)


@pytest.mark.parametrize("spec, prefix, mlp", [
    (VIT, "encoder.layers.encoder_layer_{}.self_attention", "encoder.layers.encoder_layer_0.mlp.0"),
    (GPT, "blocks.{}.attention", "blocks.0.mlp.0")], ids=["vit", "tiny_gpt"])
def test_heads_removed_physically_give_the_masked_models_outputs(spec, prefix, mlp):
    model = _model(spec)
    attention0, attention1 = prefix.format(0), prefix.format(1)
    sparsity = {f"{attention0}.q_proj": 0.5, f"{attention1}.k_proj": 0.25, mlp: 0.5,
                f"{attention1}.out_proj": 0.5}     # the residual stream: ignored
    candidate = Candidate(sparsity=sparsity, bits={}, criterion="l2", granularity="channel")
    prune_model(model, candidate, input_shape=spec[1])
    masks = current_masks(model)
    assert masks[f"{attention1}.out_proj"].all()           # its group holds the residual width
    x = _input(spec)
    with torch.no_grad():
        masked = model(x)
    keep = {name: mask.reshape(mask.shape[0], -1).any(dim=1) for name, mask in masks.items()}
    example = _input(spec, 1)
    small = shrink_model(model, example, keep)
    modules = dict(small.named_modules())
    assert modules[attention0].num_heads == 2 and modules[attention1].num_heads == 3
    head_dim = modules[attention0].head_dim
    for projection in ("q_proj", "k_proj", "v_proj"):
        assert modules[f"{attention0}.{projection}"].out_features == 2 * head_dim
    assert modules[f"{attention0}.out_proj"].in_features == 2 * head_dim
    assert modules[mlp].out_features == 32 if spec is VIT else 128
    with torch.no_grad():
        assert torch.allclose(small(x), masked, atol=1e-5)
    # The exported form runs: as a torch.export program and rebuilt from its stored state.
    program = torch.export.export(small, (x,)).module()
    assert torch.allclose(program(x), masked, atol=1e-5)
    rebuilt = rebuild_exported(export_state(small, {}), _model(spec))
    with torch.no_grad():
        assert torch.allclose(rebuilt(x), masked, atol=1e-5)


def test_head_ratio_removes_whole_heads_ranked_by_their_channels():
    from trainers.pruning.structured import lowest_channels

    scores = torch.tensor([5.0, 5.0, 0.1, 0.2, 3.0, 3.0, 9.0, 0.0])    # 4 heads of 2 channels
    assert lowest_channels(scores, 0.5, head_dim=2) == [2, 3, 4, 5]
    assert lowest_channels(scores, 0.99, head_dim=2) == [2, 3, 4, 5, 6, 7]   # one head kept
    assert lowest_channels(scores, 0.25) == [2, 7]


def test_wanda_prunes_a_transformer_from_calibration_batches():
    model = _model(GPT)
    batches = [(_input(GPT, 8), None) for _ in range(2)]
    names = [f"blocks.0.attention.{p}_proj" for p in ("q", "k", "v", "out")] + ["blocks.1.mlp.0"]
    candidate = Candidate(sparsity={n: 0.5 for n in names}, bits={}, criterion="wanda")
    Pruner(candidate, batches=lambda: batches).step(model)
    for name, mask in current_masks(model).items():
        assert int((~mask).sum()) == mask.numel() // 2, name
