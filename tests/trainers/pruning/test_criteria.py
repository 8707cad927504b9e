"""Contract tests over every registered criterion, plus hand-computed scores on tiny tensors."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from trainers.pruning import (CRITERIA, GradientStats, collect_activation_stats,
                              collect_gradient_stats, get_criterion)
from trainers.pruning.masks import mask_from_scores, mask_lowest

LAYERS = {"conv": lambda: nn.Conv2d(3, 6, 3), "linear": lambda: nn.Linear(10, 8)}


def _stats_for(module: nn.Module, name: str) -> GradientStats:
    model = nn.Sequential(module, nn.Flatten(), nn.LazyLinear(3))
    x = torch.randn(4, 3, 5, 5) if isinstance(module, nn.Conv2d) else torch.randn(4, 10)
    model(x)
    batches = [(x, torch.tensor([0, 1, 2, 0])), (x * 0.5, torch.tensor([1, 1, 0, 2]))]
    stats = collect_gradient_stats(model, ["0"], batches)
    stats.input_sq = collect_activation_stats(model, ["0"], batches).input_sq
    for store in (stats.grad_sum, stats.taylor_abs, stats.taylor_channel, stats.input_sq):
        store[name] = store.pop("0")
    return stats


def _scores(criterion, weight, name, seed, stats, granularity):
    if granularity == "channel":
        return criterion.channel_score(weight, layer_name=name, seed=seed, stats=stats)
    return criterion.score(weight, layer_name=name, seed=seed, stats=stats)


CASES = [(c, g, kind) for c in CRITERIA for g in CRITERIA[c].granularities
         if g != "n:m" for kind in LAYERS]


@pytest.mark.parametrize("name,granularity,kind", CASES)
def test_contract_exact_sparsity_deterministic_lowest_first(name, granularity, kind):
    torch.manual_seed(0)
    module = LAYERS[kind]()
    stats = _stats_for(module, "layer") if get_criterion(name).needs_data else None
    criterion = get_criterion(name)
    weight = module.weight.detach()
    scores = _scores(criterion, weight, "layer", 3, stats, granularity)
    expected_shape = weight.shape[:1] if granularity == "channel" else weight.shape
    assert scores.shape == expected_shape
    assert torch.isfinite(scores).all()
    # Deterministic under the seed (a fresh object, same inputs).
    again = _scores(get_criterion(name), weight, "layer", 3, stats, granularity)
    assert torch.equal(scores, again)
    for sparsity in (0.25, 0.5, 0.75):
        mask = mask_from_scores(scores, sparsity)
        assert int((~mask).sum()) == round(sparsity * scores.numel())
        # Lower scores are pruned first: every pruned score <= every kept score.
        assert scores[~mask].max() <= scores[mask].min()


def test_random_depends_on_seed_and_layer():
    weight = torch.randn(6, 4)
    criterion = get_criterion("random")
    a = criterion.score(weight, layer_name="a", seed=0)
    assert not torch.equal(a, criterion.score(weight, layer_name="a", seed=1))
    assert not torch.equal(a, criterion.score(weight, layer_name="b", seed=0))


def test_unknown_criterion_lists_valid_ones():
    with pytest.raises(ValueError, match=r"criterion must be one of \[.*'fpgm'.*\], got 'nope'"):
        get_criterion("nope")


def test_channel_only_criteria_refuse_per_weight_scores():
    for name in ("l2", "fpgm"):
        with pytest.raises(NotImplementedError, match="granularities \\['channel'\\]"):
            get_criterion(name).score(torch.ones(2, 2), layer_name="x", seed=0)


# Hand-computed expectations ------------------------------------------------------------------
W = torch.tensor([[3.0, -4.0], [1.0, 0.0], [-2.0, 2.0]])


def _stats(grads: list[torch.Tensor]) -> GradientStats:
    stats = GradientStats()
    stats.grad_sum["l"] = sum(grads)
    stats.taylor_abs["l"] = sum((W * g).abs() for g in grads)
    stats.taylor_channel["l"] = sum((W * g).sum(dim=1) ** 2 for g in grads)
    stats.batches = len(grads)
    return stats


G1 = torch.tensor([[1.0, 1.0], [2.0, 0.0], [0.5, -0.5]])
G2 = torch.tensor([[-1.0, 0.0], [1.0, 1.0], [0.5, 0.5]])


def test_magnitude_hand_computed():
    c = get_criterion("magnitude")
    assert c.score(W, layer_name="l", seed=0).tolist() == [[3, 4], [1, 0], [2, 2]]
    assert c.channel_score(W, layer_name="l", seed=0).tolist() == [7, 1, 4]


def test_l2_hand_computed():
    assert get_criterion("l2").channel_score(W, layer_name="l", seed=0).tolist() == pytest.approx(
        [5.0, 1.0, 8 ** 0.5])


def test_taylor_hand_computed():
    c = get_criterion("taylor")
    stats = _stats([G1, G2])
    # |W*G1| = [[3,4],[2,0],[1,1]], |W*G2| = [[3,0],[1,0],[1,1]]; mean over 2 batches
    assert c.score(W, layer_name="l", seed=0, stats=stats).tolist() == [[3, 2], [1.5, 0], [1, 1]]
    # channel sums of W*G1: [-1, 2, -2] -> squares [1, 4, 4]; W*G2: [-3, 1, 0] -> [9, 1, 0]
    assert c.channel_score(W, layer_name="l", seed=0, stats=stats).tolist() == [5, 2.5, 2]


def test_snip_hand_computed():
    # |W * (G1 + G2)| with G1 + G2 = [[0,1],[3,1],[1,0]]
    got = get_criterion("snip").score(W, layer_name="l", seed=0, stats=_stats([G1, G2]))
    assert got.tolist() == [[0, 4], [3, 0], [2, 0]]


def test_movement_hand_computed():
    got = get_criterion("movement").score(W, layer_name="l", seed=0, stats=_stats([G1, G2]))
    assert got.tolist() == [[0, 4], [-3, 0], [2, 0]]
    # The weight the loss pulls toward zero hardest (row 1, col 0) is pruned first.
    assert mask_lowest(got, 1).tolist() == [[True, True], [False, True], [True, True]]


def test_fpgm_hand_computed():
    rows = torch.tensor([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0]])
    # distances: d01=5, d02=1, d12=sqrt(9+9)=4.2426
    got = get_criterion("fpgm").channel_score(rows, layer_name="l", seed=0)
    assert got.tolist() == pytest.approx([6.0, 5 + 18 ** 0.5, 1 + 18 ** 0.5])
    # The channel closest to all others (row 2, total distance 5.24) is the most redundant.
    assert mask_lowest(got, 1).tolist() == [True, True, False]


def test_data_criteria_need_stats():
    with pytest.raises(ValueError, match="needs gradient statistics"):
        get_criterion("taylor").score(W, layer_name="l", seed=0)


def test_wanda_hand_computed():
    # Inputs x1 = [1, 0], x2 = [2, 1] (one batch of two samples): feature norms sqrt(5), 1.
    layer = nn.Linear(2, 3, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, -3.0], [-2.0, 1.0], [0.5, 2.0]]))
    model = nn.Sequential(layer)
    stats = collect_activation_stats(model, ["0"], [(torch.tensor([[1.0, 0.0], [2.0, 1.0]]), None)])
    assert stats.input_sq["0"].tolist() == [5.0, 1.0]
    got = get_criterion("wanda").score(layer.weight, layer_name="0", seed=0, stats=stats)
    root5 = 5 ** 0.5
    assert got.flatten().tolist() == pytest.approx([root5, 3.0, 2 * root5, 1.0, 0.5 * root5, 2.0])
    # Magnitude would prune the 0.5 first; on the large input (norm sqrt 5) it scores 1.12, above
    # the 1.0 on the small input, which wanda prunes first.
    assert mask_lowest(got, 1).tolist() == [[True, True], [True, False], [True, True]]


def test_wanda_grouped_convolution_reads_each_groups_channels():
    conv = nn.Conv2d(4, 4, 1, groups=2, bias=False)
    with torch.no_grad():
        conv.weight.fill_(1.0)
    x = torch.zeros(1, 4, 1, 1)
    x[0, :, 0, 0] = torch.tensor([1.0, 2.0, 3.0, 4.0])
    stats = collect_activation_stats(nn.Sequential(conv), ["0"], [(x, None)])
    got = get_criterion("wanda").score(conv.weight, layer_name="0", seed=0, stats=stats)
    # Output channels 0, 1 read input channels 0, 1; outputs 2, 3 read inputs 2, 3.
    assert got.reshape(4, 2).tolist() == [[1, 2], [1, 2], [3, 4], [3, 4]]


def test_wanda_sees_weights_used_functionally():
    class Functional(nn.Module):     # Swin-style: the Linear's weight goes to F.linear directly
        def __init__(self):
            super().__init__()
            self.qkv = nn.Linear(3, 2)

        def forward(self, x):
            return nn.functional.linear(x, self.qkv.weight, self.qkv.bias)

    model = Functional()
    stats = collect_activation_stats(model, ["qkv"], [(torch.ones(2, 3), None)])
    assert stats.input_sq["qkv"].tolist() == [2.0, 2.0, 2.0]
