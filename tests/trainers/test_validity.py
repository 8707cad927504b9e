"""Dead outputs: candidates whose masks cut a model output off from the input are rejected."""
from __future__ import annotations

import torch
from torch import nn

from trainers.discovery import discover_layers
from trainers.models.builtin import MLP, SmallCNN
from trainers.pruning.validity import dead_output_reason


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return MLP(in_features=6, num_classes=3, hidden=(4, 5))


def full_masks(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: torch.ones_like(m.weight, dtype=torch.bool) for name, m in model.named_modules()
            if isinstance(m, (nn.Linear, nn.Conv2d))}


def reason(factory, masks, shape=(6,)):
    layers = discover_layers(factory(), shape)
    return dead_output_reason(factory, masks, layers, shape)


def test_dense_and_sparse_but_connected_models_are_valid():
    masks = full_masks(mlp())
    assert reason(mlp, masks) is None
    masks["net.1"][:, 3:] = False              # most of the input ignored: still connected
    masks["net.3"][2:, :] = False              # hidden units 2.. dead: wasted, not invalid
    assert reason(mlp, masks) is None


def test_a_fully_pruned_classifier_row_is_invalid():
    masks = full_masks(mlp())
    masks["net.5"][1, :] = False
    assert reason(mlp, masks) == "classifier 'net.5' has every weight of output(s) [1] pruned"


def test_a_fully_pruned_layer_is_invalid():
    masks = full_masks(mlp())
    masks["net.3"][:] = False
    assert "layer 'net.3' has every weight pruned" in reason(mlp, masks)


def test_outputs_with_no_surviving_path_are_invalid():
    masks = full_masks(mlp())
    masks["net.1"][2:, :] = False              # only hidden units 0, 1 of layer 1 get input
    masks["net.3"][:, :2] = False              # layer 2 reads only the dead units 2, 3
    text = reason(mlp, masks)
    assert text == ("model output(s) [0, 1, 2] are cut off from the input "
                    "(no surviving path through layer 'net.3')")


def test_batchnorm_cnn_with_one_live_path_is_valid_and_a_cut_one_is_not():
    def factory():
        torch.manual_seed(0)
        model = SmallCNN(in_channels=1, num_classes=3, width=2, input_size=8)
        model.features.insert(1, nn.BatchNorm2d(2))   # a norm layer must not hide a live path
        return model

    masks = full_masks(factory())
    masks["features.0"][1:] = False            # one live filter in the first conv
    assert reason(factory, masks, (1, 8, 8)) is None
    masks["features.3"][:, 0] = False          # the next conv ignores that filter
    assert "cut off from the input (no surviving path through layer 'features.3')" in \
        reason(factory, masks, (1, 8, 8))


def test_the_probe_does_not_move_the_global_seed():
    def factory():                              # draws from the global generator
        return MLP(in_features=6, num_classes=3, hidden=(4, 5))

    masks = full_masks(factory())
    layers = discover_layers(factory(), (6,))
    torch.manual_seed(3)
    expected = torch.rand(1)
    torch.manual_seed(3)
    assert dead_output_reason(factory, masks, layers, (6,)) is None
    assert torch.rand(1) == expected
