"""Built-in transformers: ``tiny_gpt`` (a character-level language model) and ``vit`` (a small
torchvision ``VisionTransformer`` sized to the data).

``tiny_gpt`` returns its logits as (batch, vocabulary, positions): the class dimension second, as
``F.cross_entropy`` takes K-dimensional targets, so the usual loss, accuracy (argmax over dim 1:
next-character accuracy at every position), distillation and the classifier checks work unchanged.
Its input is token ids; it accepts them as floats too, clamped into the vocabulary (the cost and
latency probes feed zeros or random numbers).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from trainers.errors import SetupError
from trainers.models.attention import SplitAttention


class Block(nn.Module):
    """Pre-norm transformer block: causal self-attention, then a two-layer GELU MLP."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int, dropout: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attention = SplitAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(),
                                 nn.Linear(mlp_ratio * dim, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.norm1(x), need_weights=False, is_causal=True)[0]
        return x + self.mlp(self.norm2(x))


class TinyGPT(nn.Module):
    """A causal character-level transformer (nanoGPT's shape, a few layers wide)."""

    def __init__(self, vocab_size: int, context: int, dim: int = 64, layers: int = 2,
                 heads: int = 4, mlp_ratio: int = 4, dropout: float = 0.0):
        super().__init__()
        self.tokens = nn.Embedding(vocab_size, dim)
        self.positions = nn.Embedding(context, dim)
        self.blocks = nn.Sequential(*[Block(dim, heads, mlp_ratio, dropout) for _ in range(layers)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ids = x.long().clamp(0, self.tokens.num_embeddings - 1)
        positions = torch.arange(ids.shape[1], device=ids.device)
        h = self.blocks(self.tokens(ids) + self.positions(positions))
        return self.head(self.norm(h)).transpose(1, 2)


def build_tiny_gpt(input_shape: tuple[int, ...], num_classes: int, **opts: Any) -> nn.Module:
    """``tiny_gpt`` for token windows of ``input_shape = (context,)`` over ``num_classes``
    symbols (options: ``dim``, ``layers``, ``heads``, ``mlp_ratio``, ``dropout``)."""
    if len(input_shape) != 1:
        raise SetupError(f"model tiny_gpt needs token windows (input shape (context,), e.g. "
                         f"data: pydoc_text), got input shape {tuple(input_shape)}")
    return _checked(TinyGPT, "tiny_gpt", vocab_size=num_classes, context=input_shape[0], **opts)


def build_vit(input_shape: tuple[int, ...], num_classes: int, **opts: Any) -> nn.Module:
    """torchvision's ``VisionTransformer`` for square images of ``input_shape`` (options:
    ``patch_size`` 2, ``num_layers`` 2, ``num_heads`` 4, ``hidden_dim`` 32, ``mlp_dim`` 64)."""
    from torchvision.models import VisionTransformer

    from trainers.models.torchvision_models import adapt_input_channels

    if len(input_shape) != 3 or input_shape[1] != input_shape[2]:
        raise SetupError(f"model vit needs square images (input shape (C, H, H)), got "
                         f"{tuple(input_shape)}")
    settings = {"patch_size": 2, "num_layers": 2, "num_heads": 4, "hidden_dim": 32,
                "mlp_dim": 64, **opts}
    model = _checked(VisionTransformer, "vit", image_size=input_shape[1], num_classes=num_classes,
                     **settings)
    return adapt_input_channels(model, input_shape[0])


def _checked(cls: type, name: str, **kwargs: Any) -> nn.Module:
    try:
        return cls(**kwargs)
    except (TypeError, ValueError, AssertionError, RuntimeError) as exc:
        raise SetupError(f"model {name} with options {kwargs}: {exc}") from exc
