"""Masks applied in place per training step train exactly like the parametrizations, and the
model comes back parametrized (after a normal end, a pause, or an error)."""
from __future__ import annotations

import pytest
import torch
from torch.nn.utils import parametrize

from spaces.candidate import Candidate
from trainers.data import DataSettings, load_data
from trainers.models import SmallCNN
from trainers.pruning import current_masks, prune_model
from trainers.pruning.in_place import InPlaceMasks
from trainers.train_settings import TrainSettings
from trainers.training import TrainingDiverged, train_epochs

LAYERS = ["features.0", "features.2", "features.5", "classifier.1", "classifier.3"]


def _pruned(granularity: str) -> SmallCNN:
    torch.manual_seed(0)
    model = SmallCNN(1, 4, width=4)
    sparsity = {name: 0.5 for name in LAYERS[:-1]}
    prune_model(model, Candidate(sparsity=sparsity, bits={name: 4 for name in LAYERS},
                                 granularity=granularity, criterion="l2" if
                                 granularity == "channel" else "magnitude"),
                input_shape=(1, 8, 8))
    return model


def _train(model, data, **hooks) -> None:
    train_epochs(model, data.train, TrainSettings(epochs=2, lr=0.01, weight_decay=1e-3),
                 batch_size=16, device=torch.device("cpu"), seed=0, **hooks)


@pytest.mark.parametrize("granularity", ["unstructured", "channel"])
def test_in_place_training_is_the_parametrized_training_to_the_bit(granularity):
    data = load_data(DataSettings(name="synthetic", options={"samples": 120, "classes": 4}))
    fast, slow = _pruned(granularity), _pruned(granularity)
    assert InPlaceMasks(fast)                       # the loop will take the in-place path
    probe = data.val.tensors[0]
    seen: dict[str, list] = {"fast": [], "slow": []}

    def measure(name, model):
        def on_epoch(epoch):
            seen[name].append(model.eval()(probe).detach())
            model.train()
        return on_epoch

    _train(fast, data, on_epoch=measure("fast", fast))
    _train(slow, data, on_step=lambda step: None,   # a step callback: the parametrized path
           on_epoch=measure("slow", slow))
    for a, b in zip(seen["fast"], seen["slow"], strict=True):   # callbacks see the same model
        assert torch.equal(a, b)
    for a, b in zip(fast.state_dict().values(), slow.state_dict().values()):
        assert torch.equal(a, b)
    for name, mask in current_masks(fast).items():  # parametrized again, pruned weights zero
        weight = dict(fast.named_modules())[name].weight
        assert bool((weight[~mask] == 0).all())


def test_an_error_mid_step_leaves_the_model_parametrized_with_its_weights():
    data = load_data(DataSettings(name="synthetic", options={"samples": 60, "classes": 4}))
    model = _pruned("unstructured")
    before = {k: v.clone() for k, v in model.state_dict().items()}

    def diverging(logits, targets):
        return torch.tensor(float("nan"))

    with pytest.raises(TrainingDiverged):
        train_epochs(model, data.train, TrainSettings(epochs=1, lr=0.01), batch_size=16,
                     device=torch.device("cpu"), seed=0, loss_fn=diverging)
    assert all(parametrize.is_parametrized(dict(model.named_modules())[n]) for n in LAYERS)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_other_parametrizations_keep_the_parametrized_path():
    model = _pruned("unstructured")
    parametrize.register_parametrization(model.classifier[3], "bias", torch.nn.Identity())
    assert not InPlaceMasks(model)
