import pytest
import torch
from torch import nn

from spaces.candidate import Candidate
from trainers.data import DataSettings, load_data
from trainers.models import SmallCNN
from trainers.pruning import current_masks, fold, mask_from_scores, prune_model
from trainers.quantization import fake_quantize, quant_scale, quantize_weight
from trainers.train_settings import TrainSettings
from trainers.training import train_epochs


def test_mask_prunes_exactly_the_lowest_scores():
    scores = torch.tensor([[0.5, 0.1, 0.9], [0.3, 0.2, 0.8]])
    mask = mask_from_scores(scores, 0.5)
    assert mask.tolist() == [[True, False, True], [False, False, True]]
    assert mask_from_scores(scores, 0.0).all()


def test_pruned_weights_stay_zero_after_fine_tuning():
    torch.manual_seed(0)
    data = load_data(DataSettings(name="synthetic", options={"samples": 200}))
    model = SmallCNN(1, data.num_classes, width=4)
    names = ["features.0", "features.2", "classifier.1"]
    candidate = Candidate(sparsity={n: 0.7 for n in names}, bits={n: 4 for n in names})
    prune_model(model, candidate)
    masks = {k: v.clone() for k, v in current_masks(model).items()}
    before = {n: dict(model.named_modules())[n].weight.detach().clone() for n in names}
    train_epochs(model, data.train, TrainSettings(epochs=2, lr=0.01, weight_decay=0.01),
                 batch_size=32, device=torch.device("cpu"), seed=0)
    modules = dict(model.named_modules())
    for name in names:
        weight = modules[name].weight.detach()
        assert int((~masks[name]).sum()) == round(0.7 * weight.numel())
        assert torch.all(weight[~masks[name]] == 0)
        assert not torch.equal(weight, before[name])      # training did change the survivors
    fold(model)
    for name in names:
        assert torch.all(modules[name].weight[~masks[name]] == 0)
        assert not hasattr(modules[name], "parametrizations")


def test_quantization_error_is_at_most_half_a_step_and_zero_stays_zero():
    torch.manual_seed(0)
    weight = torch.randn(8, 3, 3, 3)
    weight[0, 0, 0, 0] = 0.0
    for bits in (2, 4, 8, 16):
        quantized = quantize_weight(weight, bits)
        step = quant_scale(weight, bits)
        assert torch.all((quantized - weight).abs() <= step / 2 + 1e-6)
        assert quantized[0, 0, 0, 0] == 0
        levels = torch.unique(quantized[1] / step[1]).numel()
        assert levels <= 2 ** bits - 1
    assert torch.equal(quantize_weight(weight, 32), weight)


def test_fake_quantize_passes_gradient_straight_through():
    weight = torch.randn(4, 5, requires_grad=True)
    fake_quantize(weight, 4).sum().backward()
    assert torch.equal(weight.grad, torch.ones_like(weight))


@pytest.mark.parametrize("bits", [4, 8, 32])
def test_masked_fake_quantize_is_fake_quantize_of_the_masked_weight(bits):
    """The one-node version used in training gives the same values and gradients, bit for bit."""
    from trainers.quantization import masked_fake_quantize

    torch.manual_seed(0)
    weight = torch.randn(6, 5, requires_grad=True)
    mask = torch.rand(6, 5) > 0.4
    mask[2] = False                      # a whole output channel pruned: its scale is 1
    upstream = torch.randn(6, 5)
    reference = fake_quantize(weight * mask, bits)
    (reference * upstream).sum().backward()
    expected_grad, weight.grad = weight.grad.clone(), None
    ours = masked_fake_quantize(weight, mask, bits)
    (ours * upstream).sum().backward()
    assert torch.equal(ours, reference)
    assert torch.equal(weight.grad, expected_grad)
    assert bool((weight.grad[~mask] == 0).all())


def test_mask_lowest_is_the_stable_sort_mask_without_sorting():
    """The threshold path gives exactly the mask of zeroing the first k of a stable argsort:
    ties (broken by position), integer scores, infinities, NaN (sorted last), every k."""
    from trainers.pruning.masks import mask_lowest

    def by_sorting(scores, k):
        mask = torch.ones(scores.numel(), dtype=torch.bool)
        mask[torch.argsort(scores.reshape(-1), stable=True)[:max(0, min(k, scores.numel()))]] = False
        return mask.reshape(scores.shape)

    g = torch.Generator().manual_seed(0)
    for case in range(400):
        n = int(torch.randint(1, 200, (1,), generator=g))
        scores = [torch.randn(n, generator=g),
                  torch.randint(0, 4, (n,), generator=g).float(),      # many ties
                  torch.randint(0, 3, (n,), generator=g),              # integer scores
                  torch.randn(n, generator=g).masked_fill(
                      torch.rand(n, generator=g) < 0.2, float("inf")),
                  torch.randn(n, generator=g).masked_fill(
                      torch.rand(n, generator=g) < 0.1, float("nan"))][case % 5]
        scores = scores.reshape(1, -1) if case % 2 else scores
        for k in (0, 1, n // 2, n - 1, n, n + 2, int(torch.randint(0, n + 1, (1,), generator=g))):
            assert torch.equal(mask_lowest(scores, k), by_sorting(scores, k)), (case, k)


def test_a_mask_of_another_shape_is_refused_when_attached():
    from trainers.pruning.masks import attach

    model = nn.Sequential(nn.Linear(4, 3))
    with pytest.raises(ValueError, match=r"a mask of shape \(3,\) for a tensor of shape \(3, 4\)"):
        attach(model, {"0": torch.ones(3, dtype=torch.bool)}, {"0": 8})
