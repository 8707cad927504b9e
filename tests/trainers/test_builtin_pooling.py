"""The built-in CNN's max pooling: evaluation pools in channels-last layout on CPU, with exactly
the values, layout and gradients of ``nn.MaxPool2d``."""
from __future__ import annotations

import torch
from torch import nn

from trainers.models import SmallCNN
from trainers.models.builtin import MaxPool2d


def test_evaluation_pooling_equals_torch_and_keeps_the_layout():
    x = torch.randn(7, 5, 9, 8)
    ours, reference = MaxPool2d(2), nn.MaxPool2d(2)
    with torch.no_grad():
        out = ours(x)
        assert torch.equal(out, reference(x))
        assert out.is_contiguous()                      # handed back as NCHW, like the input
        last = x.contiguous(memory_format=torch.channels_last)
        assert torch.equal(ours(last), reference(last))
        values, indices = MaxPool2d(2, return_indices=True)(x)
        expected_values, expected_indices = nn.MaxPool2d(2, return_indices=True)(x)
    assert torch.equal(values, expected_values) and torch.equal(indices, expected_indices)


def test_training_pooling_is_torchs_own_with_the_same_gradients():
    x = torch.randn(4, 3, 8, 8, requires_grad=True)
    MaxPool2d(2)(x).square().sum().backward()
    ours = x.grad.clone()
    x.grad = None
    nn.MaxPool2d(2)(x).square().sum().backward()
    assert torch.equal(ours, x.grad)


def test_cnn_logits_are_the_same_with_either_pooling():
    torch.manual_seed(0)
    model = SmallCNN(1, 10, width=4).eval()
    x = torch.randn(33, 1, 8, 8)
    with torch.no_grad():
        ours = model(x)
        for index, module in enumerate(model.features):
            if isinstance(module, MaxPool2d):
                model.features[index] = nn.MaxPool2d(2)
        assert torch.equal(ours, model(x))
