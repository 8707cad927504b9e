"""Rung 0: a pruned candidate measured before fine-tuning, batch norm re-estimated, nothing of
the model or the random state changed by the measurement."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from search.config import config_from_dict
from search.run.context import build_study_context
from trainers.data.splits import calibration_subset
from trainers.method_parts import prepare_candidate
from trainers.rung0 import mean_kl, measure_rung0
from trainers.training import measure_metric


class NormNet(nn.Module):
    """A small CNN with batch norm (the built-in one has none)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                      nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.classifier = nn.Linear(32, 4)

    def forward(self, x):
        return self.classifier(self.features(x))


@pytest.fixture(scope="module")
def norm_context(tmp_path_factory):
    config = config_from_dict({
        "study": "rung0", "output_dir": str(tmp_path_factory.mktemp("rung0")), "threads": 1,
        "data": {"name": "synthetic", "options": {"samples": 240, "classes": 4}},
        "dense": {"epochs": 3, "lr": 0.005}, "finetune": {"epochs": 1},
        "cost": {"measure_latency": False},
        "search": {"n_trials": 2, "baseline_sparsities": []}})
    return build_study_context(config, log=lambda _: None, model_factory=NormNet,
                               dense_key="norm-net")


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_the_dense_model_at_rung_0_is_the_dense_reference(norm_context):
    context, space = norm_context
    prepared = prepare_candidate(space.dense_candidate(), context)
    figures = measure_rung0(prepared.model, context, seed=0, bn_batches=0)
    assert figures.kl == pytest.approx(0.0, abs=1e-6)
    assert figures.accuracy == pytest.approx(
        measure_metric(prepared.model, context.data.val, context.device))
    assert figures.seconds > 0


def test_measuring_leaves_model_and_random_state_as_they_were(norm_context):
    context, space = norm_context
    prepared = prepare_candidate(space.uniform_candidate(0.9, 8), context)
    before, rng = _state(prepared.model), torch.get_rng_state()
    recalibrated = measure_rung0(prepared.model, context, seed=0, bn_batches=4)
    after = _state(prepared.model)
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)      # BN statistics put back
    assert torch.equal(rng, torch.get_rng_state())
    # Re-estimating the statistics is what changes the figure (pruning moved the activations).
    plain = measure_rung0(prepared.model, context, seed=0, bn_batches=0)
    assert recalibrated.kl > 0 and plain.kl > 0 and recalibrated.kl != plain.kl


def test_kl_is_over_the_class_dimension_and_nan_without_classes():
    dense = torch.randn(5, 3, 7)                     # (batch, classes, positions): a text model
    assert mean_kl(dense, dense.clone()) == pytest.approx(0.0, abs=1e-6)
    shuffled = dense[:, [2, 0, 1], :]
    by_hand = torch.nn.functional.kl_div(
        shuffled.log_softmax(1).movedim(1, -1).reshape(-1, 3),
        dense.log_softmax(1).movedim(1, -1).reshape(-1, 3), reduction="batchmean",
        log_target=True).item()
    assert mean_kl(dense, shuffled) == pytest.approx(by_hand)
    assert math.isnan(mean_kl(torch.randn(5, 1), torch.randn(5, 1)))    # one output: regression
    assert math.isnan(mean_kl(torch.randn(5, 3), torch.randn(4, 3)))


def test_rung_0_on_a_calibration_subset_measures_those_samples_against_the_dense_ones(
        norm_context):
    context, space = norm_context
    split = context.data.val
    assert len(split) > 20
    dense = prepare_candidate(space.dense_candidate(), context)
    figures = measure_rung0(dense.model, context, seed=0, bn_batches=0, samples=20)
    subset = calibration_subset(split, 20)
    assert figures.samples == 20 and figures.attrs()["rung0_samples"] == 20
    assert figures.kl == pytest.approx(0.0, abs=1e-6)        # the dense logits of those 20
    assert figures.accuracy == pytest.approx(
        measure_metric(dense.model, subset, context.device))
    pruned = prepare_candidate(space.uniform_candidate(0.9, 8), context)
    whole = measure_rung0(pruned.model, context, seed=0, bn_batches=0, samples=len(split))
    every = measure_rung0(pruned.model, context, seed=0, bn_batches=0, samples=None)
    assert whole.samples is None and "rung0_samples" not in whole.attrs()
    assert (whole.accuracy, whole.kl) == (every.accuracy, every.kl)
