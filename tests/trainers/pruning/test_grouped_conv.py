"""Channel pruning around grouped convolutions (1 < groups < channels, not depthwise): every group
keeps as many channels as the others and loses the same positions, so the masked model (search)
and the shrunk one (export) are the same valid model."""
from __future__ import annotations

import functools

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from conftest import tiny_eval_context
from spaces.candidate import Candidate
from trainers.costs.flops import count_flops
from trainers.discovery import discover_layers
from trainers.export_form import exported_form
from trainers.pruning import Pruner, current_masks, shrink_model
from trainers.pruning.structured import ChannelCoupling, lowest_channels
from trainers.schedules import run_schedule
from trainers.trial import evaluate_candidate

SHAPE = (1, 8, 8)


class GroupedNet(nn.Module):
    """stem -> depthwise -> pointwise -> grouped (4 groups) -> classifier (a 1x1 conv)."""

    def __init__(self, multiplier: int = 1):
        super().__init__()
        self.stem = nn.Conv2d(1, 16, 3, padding=1)
        self.bn0 = nn.BatchNorm2d(16)
        self.dw = nn.Conv2d(16, 16 * multiplier, 3, padding=1, groups=16)
        self.bn1 = nn.BatchNorm2d(16 * multiplier)
        self.pw = nn.Conv2d(16 * multiplier, 32, 1)
        self.bn2 = nn.BatchNorm2d(32)
        self.grp = nn.Conv2d(32, 32, 3, padding=1, groups=4)
        self.bn3 = nn.BatchNorm2d(32)
        self.head = nn.Conv2d(32, 10, 1)

    def forward(self, x):
        x = F.relu(self.bn0(self.stem(x)))
        x = F.relu(self.bn1(self.dw(x)))
        x = F.relu(self.bn2(self.pw(x)))
        x = F.relu(self.bn3(self.grp(x)))
        return self.head(x).mean((2, 3))


def _model(multiplier: int = 1) -> GroupedNet:
    torch.manual_seed(0)
    model = GroupedNet(multiplier)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-1, 1)
    return model.eval()


def _candidate(model, sparsity: float) -> Candidate:
    names = [layer.name for layer in discover_layers(model, SHAPE)]
    return Candidate(sparsity={n: sparsity for n in names[:-1]}, bits={}, criterion="l2",
                     granularity="channel")


def _kept_per_group(keep: torch.Tensor, groups: int) -> list[list[int]]:
    """Kept positions inside each group of a keep-mask over channels."""
    return [block.nonzero().flatten().tolist() for block in keep.reshape(groups, -1)]


def test_grouped_channels_go_at_the_same_positions_in_every_group():
    scores = torch.tensor([1.0, 9.0, 5.0, 0.1,    # group 0
                           2.0, 9.0, 5.0, 0.3])   # group 1: positions score 3, 18, 10, 0.4
    assert lowest_channels(scores, 0.5, groups=2) == [0, 3, 4, 7]
    assert lowest_channels(scores, 0.99, groups=2) == [0, 2, 3, 4, 6, 7]   # one per group kept
    assert lowest_channels(scores, 0.5) == [0, 3, 4, 7]    # no groups: the 4 lowest channels
    assert lowest_channels(scores, 0.25, groups=2) == [3, 7]


def test_the_coupling_knows_which_layers_feed_or_are_grouped_convolutions():
    coupling = ChannelCoupling(_model(), torch.zeros(1, *SHAPE))
    # pw feeds grp's four input groups; grp's own outputs come in four groups; stem only reaches
    # the depthwise conv, which the dependency graph couples channel by channel.
    assert coupling.groups == {"pw": 4, "grp": 4}


def test_masked_grouped_model_equals_the_shrunk_one_and_costs_its_flops():
    model = _model()
    masks = Pruner(_candidate(model, 0.3), input_shape=SHAPE).step(model)
    x = torch.randn(3, *SHAPE)
    with torch.no_grad():
        masked = model(x)
    keep = {name: mask.reshape(mask.shape[0], -1).any(dim=1)
            for name, mask in current_masks(model).items()}
    # Equal counts at equal positions: pw in blocks of grp's input groups, grp in its own groups.
    for name in ("pw", "grp"):
        kept = _kept_per_group(keep[name], 4)
        assert all(positions == kept[0] for positions in kept), (name, kept)
        assert 0 < len(kept[0]) < 8
    assert torch.equal(masks.channels["grp"], keep["grp"])
    small = shrink_model(model, x[:1], keep)          # what the export does
    assert small.grp.groups == 4
    assert small.grp.out_channels == int(keep["grp"].sum())
    assert small.grp.in_channels == small.pw.out_channels == int(keep["pw"].sum())
    with torch.no_grad():
        assert torch.allclose(small(x), masked, atol=1e-5)
    layers = discover_layers(small, SHAPE)
    assert count_flops(small, x[:1]) >= 2 * sum(layer.macs for layer in layers)
    assert count_flops(small, x[:1]) < count_flops(_model(), x[:1])


def test_ratios_shrink_grouped_layers_as_the_masks_do():
    model = _model()
    names = [layer.name for layer in discover_layers(model, SHAPE)]
    x = torch.randn(2, *SHAPE)
    small = shrink_model(model, x[:1], {n: 0.5 for n in names})
    assert (small.pw.out_channels, small.grp.in_channels, small.grp.out_channels) == (16, 16, 16)
    assert small.grp.weight.shape == (16, 4, 3, 3) and small.head.in_channels == 16
    candidate = Candidate(sparsity={n: 0.5 for n in names[:-1]}, bits={},
                          criterion="magnitude", granularity="channel")
    Pruner(candidate, input_shape=SHAPE).step(model)     # the same channels, masked
    with torch.no_grad():
        assert torch.allclose(small(x), model(x), atol=1e-5)


def test_a_grouped_conv_that_cannot_lose_input_channels_keeps_its_inputs():
    # dw has two outputs per input channel (groups=16, 32 outputs): removing one of its 16 inputs
    # would need a group removed, which the graph cannot do. stem's channels stay; nothing crashes.
    model = _model(multiplier=2)
    Pruner(_candidate(model, 0.5), input_shape=SHAPE).step(model)
    keep = {name: mask.reshape(mask.shape[0], -1).any(dim=1)
            for name, mask in current_masks(model).items()}
    assert bool(keep["stem"].all())
    x = torch.randn(2, *SHAPE)
    with torch.no_grad():
        masked = model(x)
    small = shrink_model(model, x[:1], keep)
    with torch.no_grad():
        assert torch.allclose(small(x), masked, atol=1e-5)
    assert small.stem.out_channels == 16
    assert small.dw.out_channels == int(keep["dw"].sum()) and small.dw.out_channels % 16 == 0


@pytest.fixture(scope="module")
def grouped_context():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield tiny_eval_context(functools.partial(GroupedNet), samples=64, measure_test=False)
    torch.set_num_threads(threads)


@pytest.mark.parametrize("schedule", ["oneshot", "gradual", "during_training"])
def test_a_grouped_channel_candidate_trains_exports_and_costs_its_shrunk_model(grouped_context,
                                                                                schedule):
    names = [layer.name for layer in grouped_context.layers]
    candidate = Candidate(sparsity={n: 0.4 for n in names[:-1]}, bits={n: 8 for n in names},
                          criterion="taylor", granularity="channel", schedule=schedule, seed=1)
    result = evaluate_candidate(candidate, grouped_context)
    assert result.status == "complete", result
    run = run_schedule(candidate, grouped_context)
    exported = exported_form(run.model, candidate, grouped_context)
    assert exported.grp.groups == 4 and exported.grp.out_channels % 4 == 0
    assert exported.grp.in_channels == exported.pw.out_channels < 32
    assert result.metrics["flops"] == count_flops(exported, torch.zeros(1, *SHAPE))
    x = torch.randn(2, *SHAPE)
    with torch.no_grad():
        assert torch.allclose(exported(x), run.model.eval()(x), atol=1e-4)
