"""Latency of the exported model: folded copy, measured median, configurable, can be turned off."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from spaces.candidate import Candidate
from trainers.costs import LatencySettings, inference_copy, measure_latency_ms
from trainers.pruning import prune_model


def test_inference_copy_folds_masks_and_leaves_the_trained_model_alone():
    model = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 2))
    prune_model(model, Candidate(sparsity={"0": 0.5}, bits={"0": 4}))
    exported = inference_copy(model)
    assert parametrize.is_parametrized(model[0], "weight")
    assert not parametrize.is_parametrized(exported[0], "weight")
    assert not exported.training
    assert int((exported[0].weight == 0).sum()) >= 64
    x = torch.randn(3, 16)
    torch.testing.assert_close(exported(x), model(x))


def test_inference_copy_applies_the_shrinker():
    model = nn.Sequential(nn.Linear(4, 4))
    exported = inference_copy(model, shrink=lambda m: nn.Sequential(nn.Linear(4, 2)))
    assert exported[0].out_features == 2 and model[0].out_features == 4


def test_latency_is_a_positive_median_and_grows_with_the_work():
    torch.manual_seed(0)
    settings = LatencySettings(batch_size=64, warmup=2, repeats=7)
    small = measure_latency_ms(nn.Linear(16, 16), (16,), torch.device("cpu"), settings)
    large = measure_latency_ms(nn.Sequential(nn.Linear(1024, 1024), nn.Linear(1024, 1024)),
                               (1024,), torch.device("cpu"), settings)
    assert 0 < small < large


@pytest.mark.parametrize("field, value, message", [
    ("batch_size", 0, "cost.latency_batch_size must be >= 1, got 0"),
    ("warmup", -1, "cost.latency_warmup must be >= 0, got -1"),
    ("repeats", 0, "cost.latency_repeats must be >= 1, got 0"),
])
def test_latency_settings_are_validated(field, value, message):
    with pytest.raises(ValueError, match=message):
        LatencySettings(**{field: value})
