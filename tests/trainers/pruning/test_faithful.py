"""Channel pruning masks only the layers whose masked channels compute what removing them does:
a LayerNorm or GroupNorm after a layer counts a zeroed channel in its statistics (a removed one
is not counted), so the masked model the search measures would not be the exported model."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from spaces.candidate import Candidate
from trainers.models import ModelSettings, build_model
from trainers.pruning import current_masks, prune_model, shrink_model
from trainers.pruning.structured import ChannelCoupling


class Normed(nn.Module):
    def __init__(self, norm: str):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.norm = nn.GroupNorm(2, 8) if norm == "group" else nn.BatchNorm2d(8)
        self.fc1 = nn.Linear(8 * 64, 32)
        self.ln = nn.LayerNorm(32)
        self.fc2 = nn.Linear(32, 16)
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        x = torch.relu(self.norm(self.conv(x))).flatten(1)
        return self.head(torch.relu(self.fc2(torch.relu(self.ln(self.fc1(x))))))


@pytest.mark.parametrize("norm", ["group", "batch"])
def test_layers_before_a_cross_channel_norm_are_left_alone(norm):
    torch.manual_seed(0)
    model = Normed(norm).eval()
    coupling = ChannelCoupling(model, torch.zeros(1, 1, 8, 8))
    left = coupling.unfaithful
    expected = {"conv", "fc1"} if norm == "group" else {"fc1"}
    assert set(left) == expected
    assert left["fc1"].startswith("ln (LayerNorm) normalises across its channels")
    if norm == "group":
        assert left["conv"].startswith("norm (GroupNorm) normalises across its channels")
    # The search's masks leave them whole; the others are pruned, and the exported (shrunk)
    # model computes what the masked one computes.
    candidate = Candidate(sparsity={"conv": 0.5, "fc1": 0.5, "fc2": 0.5}, bits={},
                          criterion="l2", granularity="channel")
    prune_model(model, candidate, input_shape=(1, 8, 8))
    masks = current_masks(model)
    assert masks["fc1"].all() and (norm == "group") == bool(masks["conv"].all())
    assert not masks["fc2"].all()
    x = torch.randn(5, 1, 8, 8)
    keep = {n: m.reshape(m.shape[0], -1).any(dim=1) for n, m in masks.items()}
    small = shrink_model(model, torch.zeros(1, 1, 8, 8), keep)
    assert small.fc2.out_features < 16
    with torch.no_grad():
        assert torch.allclose(small(x), model(x), atol=1e-5)


def test_other_couplings_are_tried_and_the_failing_ones_named():
    """No norm to recognise: two branches concatenated, then flattened into a Linear (torch-pruning
    removes the wrong input columns), found by trying, beside a layer that is fine."""
    class Concat(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(1, 4, 1)
            self.fc1 = nn.Linear(8 * 16, 12)
            self.head = nn.Linear(12, 3)

        def forward(self, x):
            x = torch.relu(torch.cat([self.a(x), self.b(x)], 1)).flatten(1)
            return self.head(torch.relu(self.fc1(x)))

    torch.manual_seed(0)
    left = ChannelCoupling(Concat().eval(), torch.zeros(1, 1, 4, 4)).unfaithful
    assert set(left) == {"a", "b"}
    assert all(why.startswith(("removing its channels", "masked and removed")) for why in
               left.values())


def test_the_built_in_models_keep_every_layer():
    for name, shape in (("cnn", (1, 8, 8)), ("mlp", (1, 8, 8)), ("vit", (1, 8, 8))):
        torch.manual_seed(0)
        model = build_model(ModelSettings(name, {}), shape, 10).eval()
        assert ChannelCoupling(model, torch.zeros(1, *shape)).unfaithful == {}, name
