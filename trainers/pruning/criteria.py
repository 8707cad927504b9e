"""Pruning criteria: small objects that score weights; lower scores are pruned first."""
from __future__ import annotations

import zlib
from typing import Callable

import torch
from torch import nn


class Criterion:
    """Scores every weight of a layer (same shape as the weight); lower is pruned first.

    ``needs_data`` criteria receive a ``batches`` iterable of ``(x, y)`` and the model.
    """

    name: str = ""
    needs_data: bool = False

    def score(self, module: nn.Module, *, layer_name: str, seed: int) -> torch.Tensor:
        raise NotImplementedError


class MagnitudeCriterion(Criterion):
    """|w|: the classic magnitude criterion (L1 of single weights)."""

    name = "magnitude"

    def score(self, module, *, layer_name, seed):
        return module.weight.detach().abs()


class RandomCriterion(Criterion):
    """Uniform random scores, seeded by the candidate's seed and the layer name: the baseline."""

    name = "random"

    def score(self, module, *, layer_name, seed):
        gen = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(layer_name.encode()))
        weight = module.weight
        return torch.rand(weight.shape, generator=gen).to(weight.device)


CRITERIA: dict[str, Callable[[], Criterion]] = {
    MagnitudeCriterion.name: MagnitudeCriterion,
    RandomCriterion.name: RandomCriterion,
}


def get_criterion(name: str) -> Criterion:
    if name not in CRITERIA:
        raise ValueError(f"criterion must be one of {sorted(CRITERIA)}, got '{name}'")
    return CRITERIA[name]()
