"""n:m candidates record what N:M applies: layers without a block of M inputs stay dense, N is
never 0, and the masks apply exactly the recorded sparsity."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from spaces import Candidate, SearchSpace, SpaceSettings, SparsityRange
from trainers.inspection import inspect_model
from trainers.pruning import Pruner, current_masks, get_criterion
from trainers.pruning.granularity import NM
from trainers.pruning.masks import remove_masks
from trainers.pruning.validity import dead_output_reason

INPUT_SHAPE = (1, 8, 8)


class GrayDepthwise(nn.Module):
    """A grayscale first conv (1 input channel), a depthwise conv (1 input per group), then layers
    wide enough for blocks of 4: 16 inputs, 6 inputs (one block and a partial one), 32."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 16, 3, padding=1)
        self.dw = nn.Conv2d(16, 16, 3, padding=1, groups=16)
        self.pw = nn.Conv2d(16, 6, 1)
        self.mix = nn.Linear(6, 32)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        x = torch.relu(self.pw(torch.relu(self.dw(torch.relu(self.stem(x))))))
        return self.fc(torch.relu(self.mix(x.mean((2, 3)))))


def nm_space(model: nn.Module, block: int = 4, input_shape: tuple[int, ...] = INPUT_SHAPE,
             **sparsity) -> SearchSpace:
    layers = inspect_model(model, input_shape).layers
    settings = SpaceSettings(granularities=("n:m",), bits=(8,), criteria=("magnitude",),
                             sparsity=SparsityRange(**sparsity))
    return SearchSpace(layers, settings, nm_block=block)


def applied(model: nn.Module) -> dict[str, float]:
    return {name: 1.0 - float(mask.sum()) / mask.numel()
            for name, mask in current_masks(model).items()}


def test_layers_without_a_block_of_m_inputs_record_and_apply_zero():
    torch.manual_seed(0)
    model = GrayDepthwise()
    candidate = nm_space(model).uniform_candidate(0.5, 8)
    assert candidate.sparsity == {"stem": 0.0, "dw": 0.0, "pw": 0.5, "mix": 0.333333, "fc": 0.0}
    Pruner(candidate).step(model)
    measured = applied(model)
    for name, recorded in candidate.sparsity.items():
        assert measured[name] == pytest.approx(recorded, abs=1e-6), name


def test_nm_masks_skip_a_layer_that_forms_no_block_whatever_is_asked():
    weights = {"stem": torch.randn(16, 1, 3, 3), "dw": torch.randn(16, 1, 3, 3),
               "pw": torch.randn(6, 16, 1, 1)}
    masks = NM(4).masks(weights, {"stem": 0.75, "dw": 0.65, "pw": 0.75},
                        get_criterion("magnitude"), seed=0)
    assert set(masks.weights) == {"pw"}
    assert masks.weights["pw"].reshape(6, 4, 4).sum(dim=2).eq(1).all()


def test_asked_beyond_the_last_pattern_keeps_one_of_m_and_the_model_stays_valid():
    torch.manual_seed(0)
    model = GrayDepthwise()
    space = nm_space(model, scale="linear", step=0.05)
    layers = inspect_model(model, INPUT_SHAPE).layers
    candidate = space.from_params({f"sparsity.{name}": 0.9 for name in space.searched_layers()})
    assert candidate.sparsity["pw"] == 0.75 and candidate.sparsity["mix"] == 0.666667
    masks = Pruner(candidate).step(model)
    assert masks.weights["pw"].reshape(6, 4, 4).sum(dim=2).eq(1).all()     # 1:4, not 0:4
    assert applied(model)["pw"] == 0.75
    assert dead_output_reason(GrayDepthwise, masks.weights, layers, INPUT_SHAPE) is None


def test_granularity_alone_clamps_n_to_one_instead_of_pruning_everything():
    weight = torch.randn(3, 8)
    mask = NM(4).masks({"l": weight}, {"l": 0.95}, get_criterion("magnitude"), seed=0).weights["l"]
    assert mask.reshape(3, 2, 4).sum(dim=2).eq(1).all()


def test_a_partial_last_block_is_counted_in_the_recorded_sparsity():
    # 6 inputs, M = 4: a block of 4 and a partial block of 2 keeping min(N, 2).
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    space = nm_space(model, input_shape=(6,), scale="linear", step=0.05)
    for asked, recorded in [(0.2, 0.166667), (0.45, 0.333333), (0.6, 0.666667), (0.9, 0.666667)]:
        candidate = space.from_params({"sparsity.0": asked})
        assert candidate.sparsity["0"] == recorded, asked
        Pruner(candidate).step(model)
        assert applied(model)["0"] == pytest.approx(recorded, abs=1e-6)
        remove_masks(model)


def test_block_size_comes_from_the_space():
    model = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 2))
    space = nm_space(model, block=8, input_shape=(16,), scale="linear", step=0.05)
    assert space.from_params({"sparsity.0": 0.3}).sparsity["0"] == 0.25      # 6:8
    assert space.from_params({"sparsity.0": 0.99}).sparsity["0"] == 0.875    # 1:8
    narrow = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 2))
    narrow_space = nm_space(narrow, block=8, input_shape=(6,))
    assert narrow_space.uniform_candidate(0.5, 8).sparsity["0"] == 0.0    # 6 < 8 inputs
    with pytest.raises(ValueError, match="nm_block must be >= 2, got 1"):
        nm_space(model, block=1, input_shape=(16,))


def test_other_granularities_keep_the_asked_sparsity():
    model = GrayDepthwise()
    layers = inspect_model(model, INPUT_SHAPE).layers
    space = SearchSpace(layers, SpaceSettings(granularities=("unstructured", "n:m"), bits=(8,),
                                              criteria=("magnitude",),
                                              sparsity=SparsityRange(scale="linear")))
    params = {"granularity": "unstructured", "sparsity.stem": 0.9, "sparsity.dw": 0.65,
              "sparsity.pw": 0.9, "sparsity.mix": 0.2}
    assert space.from_params(params).sparsity == {"stem": 0.9, "dw": 0.65, "pw": 0.9,
                                                  "mix": 0.2, "fc": 0.0}
    nm = space.from_params({**params, "granularity": "n:m"})
    assert nm.sparsity == {"stem": 0.0, "dw": 0.0, "pw": 0.75, "mix": 0.166667, "fc": 0.0}
    assert isinstance(nm, Candidate) and nm.granularity == "n:m"
