"""Multi-head attention with one ``nn.Linear`` per projection, and the conversion of
``nn.MultiheadAttention`` into it.

``nn.MultiheadAttention`` keeps q, k and v packed in one ``in_proj_weight`` and hands it and
``out_proj.weight`` to ``F.multi_head_attention_forward``: no ``Linear`` module runs, so module
hooks never see the projections, and the packed layout ties the projection width to the residual width,
so whole heads cannot be removed without changing the class. ``split_attention(model)`` replaces
every such module by ``SplitAttention``, which computes the same function (same weights, same
call signature) with four ``Linear`` layers and ``F.scaled_dot_product_attention``. Why q / k / v
as three layers rather than one packed layer: each gets its own sparsity and bit-width (the
projections tolerate pruning differently), groups can name them (``regex:\\.q_proj$``), and a head
is removed physically by dropping its rows of q, k, v and its columns of ``out_proj`` while the
residual width stays: the number of heads is read from ``q_proj``'s width at every call.
"""
from __future__ import annotations

import functools

import math
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F


class SplitAttention(nn.Module):
    """Multi-head attention over separate ``q_proj``, ``k_proj``, ``v_proj`` and ``out_proj``.

    Takes the arguments of ``nn.MultiheadAttention.forward`` (and returns ``(output, weights)``);
    ``key`` / ``value`` default to ``query`` (self-attention). Masks follow
    ``nn.MultiheadAttention``: a boolean ``attn_mask`` / ``key_padding_mask`` is True where
    attention is *not* allowed, a float one is added to the scores.
    """

    # Read by nn.TransformerEncoderLayer's fast-path check: no packed projection, so the check
    # declines its native kernel (which would need ``in_proj_weight``) and calls this module.
    in_proj_weight = None
    in_proj_bias = None
    _qkv_same_embed_dim = False

    def __init__(self, embed_dim: int, num_heads: int, *, kdim: int | None = None,
                 vdim: int | None = None, bias: bool = True, dropout: float = 0.0,
                 batch_first: bool = False):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim must be divisible by num_heads, got {embed_dim} and "
                             f"{num_heads}")
        self.embed_dim = embed_dim
        self.head_dim = embed_dim // num_heads
        self.dropout = float(dropout)
        self.batch_first = batch_first
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.k_proj = nn.Linear(kdim or embed_dim, embed_dim, bias=bias)
        self.v_proj = nn.Linear(vdim or embed_dim, embed_dim, bias=bias)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias)

    @property
    def num_heads(self) -> int:
        """Heads left: read from ``q_proj`` (heads removed at export shrink it)."""
        return self.q_proj.out_features // self.head_dim

    def head_layout(self) -> tuple[int, tuple[str, str, str], str]:
        """Channels per head, the projections whose output channels come in heads, and the output
        projection (its output channels are the residual stream's)."""
        return self.head_dim, ("q_proj", "k_proj", "v_proj"), "out_proj"

    def forward(self, query: torch.Tensor, key: torch.Tensor | None = None,
                value: torch.Tensor | None = None, key_padding_mask: torch.Tensor | None = None,
                need_weights: bool = True, attn_mask: torch.Tensor | None = None,
                average_attn_weights: bool = True, is_causal: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        key = query if key is None else key
        value = key if value is None else value
        batched = query.dim() == 3
        if not batched:                       # (L, E): one sequence
            query, key, value = query.unsqueeze(0), key.unsqueeze(0), value.unsqueeze(0)
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        elif not self.batch_first:            # (L, N, E) -> (N, L, E)
            query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
        n, length, source = query.shape[0], query.shape[1], key.shape[1]
        q = self._heads(self.q_proj(query))
        k = self._heads(self.k_proj(key))
        v = self._heads(self.v_proj(value))
        mask = _float_mask(attn_mask, key_padding_mask, n, length, source, q.dtype)
        dropout = self.dropout if self.training else 0.0
        weights = None
        if need_weights:
            scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)
            if mask is None and is_causal:
                mask = _float_mask(_causal(length, source, q.device), None, n, length, source,
                                   q.dtype)
            probs = torch.softmax(scores if mask is None else scores + mask, dim=-1)
            weights = probs.mean(dim=1) if average_attn_weights else probs
            out = F.dropout(probs, dropout, self.training) @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout,
                                                 is_causal=is_causal and mask is None)
        out = self.out_proj(out.transpose(1, 2).reshape(n, length, -1))
        if not batched:
            return out.squeeze(0), None if weights is None else weights.squeeze(0)
        if not self.batch_first:
            out = out.transpose(0, 1)
        return out, weights

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """(N, L, H * D) -> (N, H, L, D)."""
        return x.reshape(x.shape[0], x.shape[1], -1, self.head_dim).transpose(1, 2)

    @classmethod
    def from_multihead(cls, mha: nn.MultiheadAttention) -> "SplitAttention":
        """The same function as ``mha`` (weights copied; ``ValueError`` for what it can't hold)."""
        reason = unsupported_reason(mha)
        if reason:
            raise ValueError(reason)
        split = cls(mha.embed_dim, mha.num_heads, kdim=mha.kdim, vdim=mha.vdim,
                     bias=mha.in_proj_bias is not None, dropout=mha.dropout,
                     batch_first=mha.batch_first)
        with torch.no_grad():
            if mha._qkv_same_embed_dim:
                weights = mha.in_proj_weight.chunk(3, dim=0)
            else:
                weights = (mha.q_proj_weight, mha.k_proj_weight, mha.v_proj_weight)
            biases = (mha.in_proj_bias.chunk(3) if mha.in_proj_bias is not None
                      else (None, None, None))
            for proj, weight, bias in zip((split.q_proj, split.k_proj, split.v_proj), weights,
                                          biases):
                proj.weight.copy_(weight)
                if bias is not None:
                    proj.bias.copy_(bias)
            split.out_proj.weight.copy_(mha.out_proj.weight)
            if mha.out_proj.bias is not None:
                split.out_proj.bias.copy_(mha.out_proj.bias)
        param = mha.out_proj.weight
        return split.to(device=param.device, dtype=param.dtype).train(mha.training)


def unsupported_reason(mha: nn.MultiheadAttention) -> str | None:
    """Why ``mha`` can't be split (learned key/value biases, zero attention), or None."""
    if mha.bias_k is not None or mha.bias_v is not None:
        return "nn.MultiheadAttention with add_bias_kv=True is not split"
    if mha.add_zero_attn:
        return "nn.MultiheadAttention with add_zero_attn=True is not split"
    return None


def split_attention(model: nn.Module) -> dict[str, str]:
    """Replace every ``nn.MultiheadAttention`` of ``model`` by ``SplitAttention`` (in place).

    Returns:
        The modules left as they were, with the reason (their packed projections are then not
        searched; ``sparsity-search inspect`` lists them).
    """
    left: dict[str, str] = {}
    for name, module in list(model.named_modules()):
        if type(module) is not nn.MultiheadAttention:
            continue
        reason = unsupported_reason(module)
        if reason:
            left[name] = reason
            continue
        split = SplitAttention.from_multihead(module)
        if name:
            model.set_submodule(name, split)
        else:
            raise ValueError("split_attention needs a model that contains the attention module, "
                             "not the module itself: use SplitAttention.from_multihead")
    return left


def splitting(factory: Callable[[], nn.Module]) -> Callable[[], nn.Module]:
    """``factory`` whose models come with their attention split (``split_attention``); a
    ``partial`` of a module-level function, so it pickles whenever ``factory`` does (local
    worker processes receive it)."""
    return functools.partial(_build_split, factory)


def _build_split(factory: Callable[[], nn.Module]) -> nn.Module:
    model = factory()
    if isinstance(model, nn.Module):
        split_attention(model)
    return model


def _causal(length: int, source: int, device: torch.device) -> torch.Tensor:
    return torch.ones(length, source, dtype=torch.bool, device=device).triu(1)


def _float_mask(attn_mask: torch.Tensor | None, key_padding_mask: torch.Tensor | None, n: int,
                length: int, source: int, dtype: torch.dtype) -> torch.Tensor | None:
    """One additive mask, broadcastable to (N, H, L, S), from the two masks of the MHA API."""
    mask = None
    if attn_mask is not None:
        mask = _additive(attn_mask, dtype)
        mask = mask.reshape(n, -1, length, source) if mask.dim() == 3 else mask
    if key_padding_mask is not None:
        padding = _additive(key_padding_mask, dtype).reshape(n, 1, 1, source)
        mask = padding if mask is None else mask + padding
    return mask


def _additive(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(mask,
                                                                                     float("-inf"))
    return mask.to(dtype)
