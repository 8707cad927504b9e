import torch

from trainers.pruning.global_threshold import global_magnitude_sparsity


def test_one_threshold_across_layers_hand_computed():
    state = {"a.weight": torch.tensor([0.1, 0.2, 0.3, 0.4]),
             "b.weight": torch.tensor([[1.0, 2.0], [0.05, 3.0]])}
    # 8 weights, prune 4 smallest overall: 0.05 (b), 0.1, 0.2, 0.3 (a)
    assert global_magnitude_sparsity(state, ["a", "b"], 0.5) == {"a": 0.75, "b": 0.25}
    assert global_magnitude_sparsity(state, ["a", "b"], 0.0) == {"a": 0.0, "b": 0.0}
