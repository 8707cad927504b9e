"""The export form on hand-made tensors: integer codes, the stored state and its rebuilding (a
whole study's export is tested in tests/search/test_export.py)."""
from __future__ import annotations

import torch
from torch import nn

from trainers.export_form import export_state, quantized_codes, rebuild_exported
from trainers.quantization import quantize_weight


def test_codes_reproduce_quantized_weights_even_after_input_channels_are_removed():
    torch.manual_seed(0)
    weight = quantize_weight(torch.randn(6, 10), 4)
    for kept in (weight, weight[:, 3:], weight[:, ::3]):   # removed columns held row maxima
        codes = quantized_codes(kept, 4)
        assert codes is not None and codes["codes"].abs().max() <= 7
        rebuilt = codes["codes"].float() * codes["scale"][:, None]
        assert torch.allclose(rebuilt, kept, rtol=1e-6, atol=1e-7)
    assert quantized_codes(torch.randn(3, 5), 4) is None      # not on any 4-bit grid


def test_a_stored_shrunk_quantized_model_is_rebuilt_into_the_dense_architecture():
    torch.manual_seed(0)
    small = nn.Sequential(nn.Linear(4, 2), nn.ReLU(), nn.Linear(2, 3))   # hidden 5 -> 2 channels
    with torch.no_grad():
        small[0].weight.copy_(quantize_weight(small[0].weight, 4))
    stored = export_state(small, {"0": 4, "2": 32})
    assert set(stored["quantized"]) == {"0"} and "0.weight" not in stored["state_dict"]
    assert stored["quantized"]["0"]["codes"].dtype == torch.int8
    rebuilt = rebuild_exported(stored, nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3)))
    assert (rebuilt[0].out_features, rebuilt[2].in_features) == (2, 2)
    assert not rebuilt.training
    x = torch.randn(7, 4)
    with torch.no_grad():
        assert torch.allclose(rebuilt(x), small(x), atol=1e-6)


def test_the_example_batch_is_collated_as_a_loader_would():
    """A data set returning numpy arrays (and Python ints) gives a tensor batch, as training
    reads it (torch.stack of its samples failed at export)."""
    import types

    import numpy as np
    from torch.utils.data import Dataset

    from trainers.export_form import example_batch

    class Arrays(Dataset):
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return np.full((1, 4, 4), i, dtype=np.float32), i

    context = types.SimpleNamespace(data=types.SimpleNamespace(val=Arrays()))
    (batch,) = example_batch(context)
    assert isinstance(batch, torch.Tensor) and batch.shape == (2, 1, 4, 4)
    assert batch[1].eq(1).all()
