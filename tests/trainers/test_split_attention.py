"""SplitAttention computes what nn.MultiheadAttention computes, with one Linear per projection."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from trainers.models.attention import SplitAttention, split_attention


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("need_weights", [True, False])
def test_same_outputs_and_weights_as_multihead_attention_with_masks(batch_first, need_weights):
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(16, 4, batch_first=batch_first).eval()
    split = SplitAttention.from_multihead(mha).eval()
    x = torch.randn(2, 5, 16) if batch_first else torch.randn(5, 2, 16)
    memory = torch.randn(2, 7, 16) if batch_first else torch.randn(7, 2, 16)
    padding = torch.zeros(2, 7, dtype=torch.bool)
    padding[0, -2:] = True
    causal = torch.ones(5, 7, dtype=torch.bool).triu(1)
    for kwargs in ({}, {"key_padding_mask": padding, "attn_mask": causal},
                   {"attn_mask": causal.float() * -1e4}):
        expected = mha(x, memory, memory, need_weights=need_weights, **kwargs)
        got = split(x, memory, memory, need_weights=need_weights, **kwargs)
        assert torch.allclose(got[0], expected[0], atol=1e-6)
        assert (got[1] is None) == (expected[1] is None)
        if need_weights:
            assert torch.allclose(got[1], expected[1], atol=1e-6)
    assert [name for name, _ in split.named_children()] == ["q_proj", "k_proj", "v_proj",
                                                           "out_proj"]


def test_unbatched_and_causal_inputs():
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(8, 2).eval()
    split = SplitAttention.from_multihead(mha).eval()
    x = torch.randn(6, 8)
    assert torch.allclose(split(x, x, x)[0], mha(x, x, x)[0], atol=1e-6)
    mask = nn.Transformer.generate_square_subsequent_mask(6)
    batch = torch.randn(6, 3, 8)
    expected = mha(batch, batch, batch, attn_mask=mask, need_weights=False)[0]
    assert torch.allclose(split(batch, need_weights=False, is_causal=True)[0], expected, atol=1e-6)


def test_split_inside_transformer_encoder_keeps_its_outputs():
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(16, 4, 32, batch_first=True)
    encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False).eval()
    x = torch.randn(2, 5, 16)
    with torch.no_grad():
        expected = encoder(x)             # nn.MultiheadAttention (its fused path where it applies)
        assert split_attention(encoder) == {}
        assert torch.allclose(encoder(x), expected, atol=1e-5)
    assert not any(isinstance(m, nn.MultiheadAttention) for m in encoder.modules())


def test_what_cannot_be_split_is_left_with_the_reason():
    model = nn.Sequential(nn.MultiheadAttention(8, 2, add_bias_kv=True),
                          nn.MultiheadAttention(8, 2, add_zero_attn=True))
    assert split_attention(model) == {
        "0": "nn.MultiheadAttention with add_bias_kv=True is not split",
        "1": "nn.MultiheadAttention with add_zero_attn=True is not split"}
    with pytest.raises(ValueError, match="embed_dim must be divisible by num_heads, got 10 and 4"):
        SplitAttention(10, 4)
