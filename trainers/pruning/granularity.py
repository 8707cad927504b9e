"""Granularities: what one pruned unit is (a weight, an output channel, a weight in an N:M block).

Each granularity turns per-layer sparsities plus a criterion into masks (``PruneMasks``). Sparsity
keeps its meaning everywhere: the fraction of a layer's weights (unstructured, n:m) or output
channels (channel) removed. ``previous`` masks make repeated pruning monotone (gradual schedule):
what was pruned stays pruned.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, ClassVar, Mapping

import torch

from spaces.nm_grid import NM_GRANULARITY, forms_nm_block, nm_inputs, nm_kept
from trainers.pruning.criteria import Criterion
from trainers.pruning.gradients import GradientStats
from trainers.pruning.masks import mask_from_scores
from trainers.pruning.channel_masks import channel_masks
from trainers.pruning.structured import ChannelCoupling, lowest_channels

PRUNED = float("-inf")


@dataclass
class PruneMasks:
    """Masks of one pruning step.

    Attributes:
        weights: layer name -> weight-shaped keep-mask.
        params: (module name, parameter name) -> 1-D keep-mask (biases, norms; channel only).
        channels: layer name -> output-channel keep-mask of the layers the request named (channel
            only); what ``shrink_model`` takes to remove them physically.
    """

    weights: dict[str, torch.Tensor] = field(default_factory=dict)
    params: dict[tuple[str, str], torch.Tensor] = field(default_factory=dict)
    channels: dict[str, torch.Tensor] = field(default_factory=dict)


class Granularity:
    """Turns scores into masks. ``masks`` receives the layers' current (effective) weights."""

    name: ClassVar[str] = ""

    def masks(self, weights: Mapping[str, torch.Tensor], sparsity: Mapping[str, float],
              criterion: Criterion, *, seed: int, stats: GradientStats | None = None,
              previous: PruneMasks | None = None) -> PruneMasks:
        raise NotImplementedError


def _scores(criterion: Criterion, weight: torch.Tensor, name: str, seed: int,
            stats: GradientStats | None, previous: PruneMasks | None) -> torch.Tensor:
    scores = criterion.score(weight, layer_name=name, seed=seed, stats=stats).float().clone()
    if previous is not None and name in previous.weights:
        scores[~previous.weights[name].to(scores.device)] = PRUNED
    return scores


class Unstructured(Granularity):
    """Single weights: exactly ``round(sparsity * n)`` weights per layer are masked."""

    name = "unstructured"

    def masks(self, weights, sparsity, criterion, *, seed, stats=None, previous=None):
        out = PruneMasks()
        for name, s in sparsity.items():
            scores = _scores(criterion, weights[name], name, seed, stats, previous)
            out.weights[name] = mask_from_scores(scores, s)
        return out


def nm_mask(scores: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Keep the ``n`` highest scores in every block of ``m`` consecutive weights along the input
    dimension (conv weights are grouped over input channels at each kernel position, as sparse
    tensor cores expect). A last partial block of ``r`` weights keeps ``min(n, r)``."""
    moved = scores.movedim(1, -1) if scores.dim() > 2 else scores
    rows = moved.reshape(-1, moved.shape[-1]).float()
    length = rows.shape[1]
    blocks = -(-length // m)
    padded = torch.full((rows.shape[0], blocks * m), float("-inf"), device=rows.device)
    padded[:, :length] = rows
    padded = padded.reshape(rows.shape[0], blocks, m)
    keep = torch.zeros_like(padded, dtype=torch.bool)
    if n > 0:
        keep.scatter_(2, torch.topk(padded, min(n, m), dim=2).indices, True)
    keep = keep.reshape(rows.shape[0], blocks * m)[:, :length].reshape(moved.shape)
    return (keep.movedim(-1, 1) if scores.dim() > 2 else keep).contiguous()


class NM(Granularity):
    """Semi-structured N:M: in every block of M weights (M = ``pruning.nm_block``), N are kept,
    N in 1..M the count whose applied sparsity is nearest the asked one (``spaces.nm_grid``: a
    multiple of 1/M on a layer of whole blocks, round((1 - s) * M) kept, at least one). A layer
    with fewer than M inputs forms no block: it gets no mask and stays dense, as the space records
    it."""

    name = NM_GRANULARITY

    def __init__(self, block: int = 4):
        self.block = block

    def masks(self, weights, sparsity, criterion, *, seed, stats=None, previous=None):
        out = PruneMasks()
        for name, s in sparsity.items():
            inputs = nm_inputs(tuple(weights[name].shape))
            if not forms_nm_block(inputs, self.block):
                continue
            scores = _scores(criterion, weights[name], name, seed, stats, previous)
            out.weights[name] = nm_mask(scores, nm_kept(s, inputs, self.block), self.block)
        return out


class Channel(Granularity):
    """Whole output channels of Conv2d / neurons of Linear, with their coupled channels (batch norm,
    residual partners) masked too; ``round(sparsity * channels)`` of each named layer go (of an
    attention projection: ``round(sparsity * heads)`` whole heads)."""

    name = "channel"

    def __init__(self, coupling: ChannelCoupling, model: torch.nn.Module):
        self.coupling = coupling
        self.model = model

    def masks(self, weights, sparsity, criterion, *, seed, stats=None, previous=None):
        requested: dict[str, list[int]] = {}
        out = PruneMasks()
        for name, s in sparsity.items():
            if name == self.coupling.classifier:
                continue
            weight = weights[name]
            scores = criterion.channel_score(weight, layer_name=name, seed=seed,
                                             stats=stats).float().clone()
            if previous is not None and name in previous.channels:
                scores[~previous.channels[name].to(scores.device)] = PRUNED
            requested[name] = lowest_channels(scores, s, self.coupling.heads.get(name),
                                              self.coupling.groups.get(name, 1))
        removed = self.coupling.expand(requested)
        for name in sparsity:
            if name == self.coupling.classifier:
                continue
            keep = torch.ones(weights[name].shape[0], dtype=torch.bool)
            keep[torch.as_tensor(removed.get(name, []), dtype=torch.long)] = False
            out.channels[name] = keep
        out.weights, out.params = channel_masks(self.model, removed)
        return out


GRANULARITIES: dict[str, Callable[..., Granularity]] = {
    Unstructured.name: Unstructured, Channel.name: Channel, NM.name: NM}


def check_granularity(name: str) -> None:
    if name not in GRANULARITIES:
        raise ValueError(f"granularity must be one of {list(GRANULARITIES)}, got '{name}'")
