"""Allocation rules (LAMP, ERK): hand-computed tiny states, then the built-in models on digits."""
from __future__ import annotations

import math

import pytest
import torch

from search.config import BASELINES
from trainers.data import DataSettings, load_data
from trainers.discovery import discover_layers
from trainers.models import ModelSettings, build_model
from trainers.pruning.allocation import ALLOCATIONS, erk_sparsity, lamp_scores, lamp_sparsity
from trainers.train_settings import TrainSettings
from trainers.training import train_epochs


def test_every_baseline_name_has_a_rule():
    assert set(BASELINES) == set(ALLOCATIONS)


def test_lamp_scores_hand_computed():
    # squares 1, 4, 9: each over the sum of the squares at least as large (14, 13, 9)
    scores = lamp_scores(torch.tensor([2.0, -1.0, 3.0]))
    assert torch.allclose(scores, torch.tensor([4 / 13, 1 / 14, 1.0], dtype=torch.float64))


def test_lamp_on_a_two_layer_state_hand_computed():
    state = {"a.weight": torch.tensor([1.0, 2.0, 3.0]), "b.weight": torch.tensor([[10.0, 20.0]])}
    # scores: a 1/14, 4/13, 1; b 100/500 = 0.2, 1. Global magnitude would take 1 and 2 (a: 2/3);
    # LAMP takes the two lowest scores, 1/14 (a) and 0.2 (b), then 4/13 (a).
    assert lamp_sparsity(state, ["a", "b"], 0.4) == {"a": pytest.approx(1 / 3), "b": 0.5}
    assert lamp_sparsity(state, ["a", "b"], 0.6) == {"a": pytest.approx(2 / 3), "b": 0.5}
    assert lamp_sparsity(state, ["a", "b"], 0.0) == {"a": 0.0, "b": 0.0}


def test_erk_caps_a_layer_at_dense_and_rescales_the_rest_hand_computed():
    state = {"a.weight": torch.zeros(4, 2), "b.weight": torch.zeros(10, 10)}
    # raw densities 6/8 and 20/100; 54 of 108 weights kept: scale 54/26 makes a 1.56 -> dense
    # (8 kept), then b keeps 46 of 100.
    found = erk_sparsity(state, ["a", "b"], 0.5)
    assert found == {"a": 0.0, "b": pytest.approx(0.54)}
    assert erk_sparsity(state, ["a", "b"], 0.0) == {"a": 0.0, "b": 0.0}


@pytest.mark.parametrize("rule", [lamp_sparsity, erk_sparsity])
def test_a_sparsity_outside_0_1_is_refused(rule):
    with pytest.raises(ValueError, match=r"sparsity must be in \[0, 1\), got 1.0"):
        rule({"a.weight": torch.ones(2, 2)}, ["a"], 1.0)


@pytest.fixture(scope="module", params=["cnn", "mlp"])
def trained_on_digits(request):
    """A built-in model trained 2 epochs on digits: (dense state, layer names, sizes)."""
    data = load_data(DataSettings(name="digits"))
    model = build_model(ModelSettings(name=request.param), data.input_shape, data.num_classes)
    train_epochs(model, data.train, TrainSettings(epochs=2, lr=0.002), batch_size=32,
                 device=torch.device("cpu"), seed=0)
    names = [layer.name for layer in discover_layers(model, data.input_shape)]
    state = model.state_dict()
    sizes = {name: state[f"{name}.weight"].numel() for name in names}
    return state, names, sizes


@pytest.mark.parametrize("rule", [lamp_sparsity, erk_sparsity])
@pytest.mark.parametrize("target", [0.5, 0.8, 0.95])
def test_removed_fraction_of_all_weights_is_the_target(trained_on_digits, rule, target):
    state, names, sizes = trained_on_digits
    found = rule(state, names, target)
    removed = sum(found[n] * sizes[n] for n in names)
    assert abs(removed / sum(sizes.values()) - target) <= 1 / sum(sizes.values()) + 1e-9
    assert all(0.0 <= s < 1.0 for s in found.values())
    assert len(set(found.values())) > 1            # not uniform


def test_erk_gives_smaller_layers_lower_sparsity(trained_on_digits):
    state, names, sizes = trained_on_digits
    found = erk_sparsity(state, names, 0.9)
    by_size = sorted(names, key=lambda n: sizes[n])
    smallest, largest = by_size[0], by_size[-1]
    assert found[smallest] < found[largest]
    # density ~ sum(shape) / prod(shape): the ordering follows it exactly for uncapped layers
    ratio = {n: sum(state[f"{n}.weight"].shape) / math.prod(state[f"{n}.weight"].shape)
             for n in names}
    uncapped = sorted((n for n in names if found[n] > 0), key=lambda n: -ratio[n])
    assert [found[n] for n in uncapped] == sorted(found[n] for n in uncapped)


def test_lamp_never_empties_a_layer(trained_on_digits):
    state, names, _ = trained_on_digits
    found = lamp_sparsity(state, names, 0.95)
    assert all(s < 1.0 for s in found.values())
