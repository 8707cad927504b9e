"""Tied weights (one Parameter held by several modules: ``out.weight = proj.weight``, a GPT's output
head and token embedding) are left out of the search: not searched, never masked or quantized, so
the searched model is the exported one."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from spaces.candidate import Candidate
from trainers.discovery import discover, shared_parameters
from trainers.inspection import inspect_model
from trainers.pruning import Pruner, attach, current_masks, fold, shrink_model

SHAPE = (1, 8, 8)


class Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc = nn.Linear(64, 32)
        self.mid = nn.Linear(32, 32)
        self.proj = nn.Linear(32, 10)
        self.out = nn.Linear(32, 10)
        self.out.weight = self.proj.weight          # tied: one Parameter, two modules

    def forward(self, x):
        h = F.relu(self.mid(F.relu(self.enc(x.flatten(1)))))
        return self.out(h) + 0.1 * self.proj(h)


class TiedEmbedding(nn.Module):
    """GPT-style: the output head reuses the token embedding."""

    def __init__(self):
        super().__init__()
        self.tokens = nn.Embedding(12, 16)
        self.mlp = nn.Linear(16, 16)
        self.head = nn.Linear(16, 12, bias=False)
        self.head.weight = self.tokens.weight

    def forward(self, x):
        return self.head(F.relu(self.mlp(self.tokens(x.long()))))


class Reused(nn.Module):
    """One module called twice: its weight is not shared with another module."""

    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(64, 32)
        self.shared = nn.Linear(32, 32)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        h = F.relu(self.shared(F.relu(self.inp(x.flatten(1)))))
        return self.fc(F.relu(self.shared(h)))


def test_shared_parameters_name_the_other_holders():
    assert shared_parameters(Tied()) == {"proj.weight": ["out"], "out.weight": ["proj"]}
    assert shared_parameters(TiedEmbedding()) == {"tokens.weight": ["head"],
                                                  "head.weight": ["tokens"]}
    assert shared_parameters(Reused()) == {}


def test_tied_layers_are_left_out_of_the_search_and_inspect_says_why():
    found = discover(Tied(), SHAPE)
    assert [layer.name for layer in found.layers] == ["enc", "mid"]
    # The model's output comes from a tied layer: no searched layer is the classifier.
    assert not any(layer.is_classifier for layer in found.layers)
    reasons = {other.name: other.reason for other in found.others}
    assert reasons["proj.weight"] == "weight shared with out: left out of the search"
    assert reasons["out.weight"] == "weight shared with proj: left out of the search"
    report = inspect_model(Tied(), SHAPE)
    assert report.params_total == 64 * 32 + 32 + 32 * 32 + 32 + 10 * 32 + 10 + 10
    # The tied layers' work is still counted, as fixed cost (both calls).
    assert report.other_flops == 2 * 2 * 10 * 32
    text = discover(TiedEmbedding(), (5,))
    assert [layer.name for layer in text.layers] == ["mlp"]
    assert {o.name: o.reason for o in text.others}["head.weight"] == (
        "weight shared with tokens: left out of the search")


def test_reused_module_is_still_one_searched_layer():
    found = discover(Reused(), SHAPE)
    assert [layer.name for layer in found.layers] == ["inp", "shared", "fc"]
    assert found.layers[-1].is_classifier
    assert found.layers[1].macs == 2 * 32 * 32


def test_a_searched_tied_model_is_the_exported_one():
    torch.manual_seed(0)
    model = Tied().eval()
    names = [layer.name for layer in discover(model, SHAPE).layers]
    candidate = Candidate(sparsity={n: 0.5 for n in names}, bits={n: 4 for n in names})
    Pruner(candidate).step(model)
    assert set(current_masks(model)) == {"enc", "mid"}
    x = torch.randn(4, *SHAPE)
    with torch.no_grad():
        searched = model(x)
    exported = fold(model)
    assert exported.out.weight is exported.proj.weight
    with torch.no_grad():
        assert torch.equal(exported(x), searched)


def test_masking_one_holder_of_a_shared_weight_is_refused():
    model = Tied()
    with pytest.raises(ValueError, match="weight of 'out' is shared with 'proj'"):
        attach(model, {"out": torch.ones(10, 32, dtype=torch.bool)}, {"out": 8})


def test_channel_pruning_keeps_the_tied_outputs_and_shrinks_like_the_masks():
    torch.manual_seed(0)
    model = Tied().eval()
    candidate = Candidate(sparsity={"enc": 0.5, "mid": 0.5}, bits={}, criterion="l2",
                          granularity="channel")
    masks = Pruner(candidate, input_shape=SHAPE).step(model)
    assert int((~masks.channels["mid"]).sum()) == 16
    x = torch.randn(3, *SHAPE)
    with torch.no_grad():
        masked = model(x)
    small = shrink_model(model, x[:1], masks.channels)
    assert (small.mid.out_features, small.out.in_features, small.proj.in_features) == (16, 16, 16)
    with torch.no_grad():
        assert torch.allclose(small(x), masked, atol=1e-6)


def test_a_tied_weight_counts_once_in_the_cost_basis():
    from trainers.costs.model_basis import cost_basis

    for model, shape in ((Tied(), SHAPE), (TiedEmbedding(), (5,))):
        basis = cost_basis(model, shape)
        stored = sum(param.numel() for param in model.parameters())     # each Parameter once
        assert sum(layer.params for layer in basis.layers) + basis.other_params == stored
