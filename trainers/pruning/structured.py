"""Channel pruning: coupled channel masks during search, physical removal at export.

Removing output channel ``c`` of a convolution also removes channel ``c`` of the batch norm after it,
the matching input channel of every consumer, and, through residual additions or concatenations,
channels of other layers. torch-pruning's ``DependencyGraph`` knows these couplings; we use it in
two ways and keep the two exactly equivalent:

- ``ChannelCoupling.expand`` turns "remove these channels of layer L" into the output channels of
  every coupled module. ``channel_masks`` makes masks from that (weight rows, biases and norm
  parameters), so a masked channel outputs exactly zero during search (reversible).
- ``shrink_model`` removes the same channels physically (``Group.prune``), so the exported model
  computes what the masked one computed, with fewer parameters and FLOPs.

The indices to remove come from our own criteria (not torch-pruning's importances): the exported
model is the searched one. The first layer of a coupled group (in execution order) with a
nonzero request decides the group's channels; later requests for coupled layers are ignored.
Groups that would remove output channels of the classifier (the last Conv2d / Linear executed,
searched or not) or of a layer with a tied weight (``trainers.discovery``) are not pruned.

Attention heads: the q / k / v projections of a module that declares its heads (``head_layout()``,
as ``trainers.models.attention.SplitAttention`` does) lose whole heads: a sparsity ``s`` removes
``round(s * heads)`` heads (at least one kept), ranked by the sum of their channels' scores.
torch-pruning's graph couples a head's rows of q, k and v with its columns of ``out_proj``, so the
masked head outputs exactly zero during the search and is removed physically at export.

Grouped convolutions (``trainers.pruning.grouped_convs``): a layer whose channels reach one is
pruned in equal blocks at the same positions (``ChannelCoupling.groups``, ``lowest_channels``: a
position scores its channels' sum); a group leaving a grouped convolution invalid is not pruned.
"""
from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import torch
import torch_pruning as tp
from torch import nn

from trainers.discovery import discover, layer_kind
from trainers.pruning.criteria import get_criterion
from trainers.pruning.faithful import RATIO, unfaithful_layers
from trainers.pruning.grouped_convs import (channel_blocks, fits_conv_groups, has_grouped_conv,
                                            is_grouped_conv)
from trainers.pruning.kept_outputs import blocked, fixed_outputs, head_dims
from trainers.pruning.masks import fold, folded_copy, mask_lowest

ChannelRequest = Mapping[str, "torch.Tensor | float"]


def _out_channel_fn(module: nn.Module):
    if isinstance(module, nn.Linear):
        return tp.prune_linear_out_channels
    return tp.prune_conv_out_channels


def channels_to_remove(out_channels: int, ratio: float) -> int:
    """``round(ratio * out_channels)``, keeping at least one channel."""
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"channel ratio must be in [0, 1), got {ratio}")
    return min(int(round(ratio * out_channels)), out_channels - 1)


def conv_groups(graph: tp.DependencyGraph, modules: Mapping[str, nn.Module],
                names: Iterable[str]) -> dict[str, int]:
    """Layer name -> the number of equal blocks its output channels are pruned in, for the layers
    whose channels reach grouped convolutions (``channel_blocks``) and split into that many."""
    if not any(is_grouped_conv(module) for module in modules.values()):
        return {}
    found = {}
    for name in names:
        module = modules[name]
        channels = module.weight.shape[0]
        group = graph.get_pruning_group(module, _out_channel_fn(module), list(range(channels)))
        blocks = channel_blocks(group)
        if blocks > 1 and channels % blocks == 0:
            found[name] = blocks
    return found


def lowest_channels(scores: torch.Tensor, ratio: float, head_dim: int | None = None,
                    groups: int = 1) -> list[int]:
    """Indices of the ``round(ratio * n)`` lowest-scoring channels (at least one kept); with
    ``head_dim``, of whole heads: a head scores the sum of its channels, ``ratio`` counts heads;
    with ``groups`` > 1, the same positions of each of ``groups`` equal blocks: a position scores
    the sum of its channels, ``ratio`` counts positions (at least one kept)."""
    if groups > 1 and not head_dim:
        positions = scores.reshape(groups, -1).sum(dim=0)
        gone = (~mask_lowest(positions, channels_to_remove(positions.shape[0], ratio))
                ).nonzero().flatten()
        starts = torch.arange(groups, device=gone.device) * positions.shape[0]
        return (starts[:, None] + gone[None, :]).flatten().tolist()
    if not head_dim:
        keep = mask_lowest(scores, channels_to_remove(scores.shape[0], ratio))
        return (~keep).nonzero().flatten().tolist()
    heads = scores.reshape(-1, head_dim).sum(dim=1)
    gone = (~mask_lowest(heads, channels_to_remove(heads.shape[0], ratio))).nonzero().flatten()
    offsets = torch.arange(head_dim, device=gone.device)
    return (gone[:, None] * head_dim + offsets).flatten().tolist()


class ChannelCoupling:
    """The model's channel dependencies, built once per architecture (weights are not read).

    Args:
        model: the model (parametrizations allowed: a folded copy is traced).
        example_input: a batch the model accepts (e.g. ``torch.zeros(1, *input_shape)``).
    """

    def __init__(self, model: nn.Module, example_input: torch.Tensor):
        self._plain = folded_copy(model).eval()
        self._example = example_input
        found = discover(self._plain, tuple(example_input.shape[1:]))
        self.layer_order = [layer.name for layer in found.layers]
        self.classifier = found.classifier
        self.heads = head_dims(self._plain)[0]
        self._fixed = fixed_outputs(self._plain, found)
        self._graph = None
        self._unfaithful: dict[str, str] | None = None
        self.groups: dict[str, int] = {}     # layer -> equal blocks (grouped convolutions)
        if has_grouped_conv(self._plain):
            self._build()
            self.groups = conv_groups(self._graph, self._modules,
                                      [n for n in self.layer_order if n != self.classifier])

    def _build(self) -> tp.DependencyGraph:
        if self._graph is None:
            self._graph = tp.DependencyGraph().build_dependency(
                self._plain, example_inputs=self._example, verbose=False)
            self._modules = dict(self._plain.named_modules())
            self._names = {id(module): name for name, module in self._plain.named_modules()}
        return self._graph

    @property
    def unfaithful(self) -> dict[str, str]:
        """Layers whose channels are left alone, with why: masking them would not compute what
        removing them does (``trainers.pruning.faithful``; tried once per architecture)."""
        if self._unfaithful is None:
            self._unfaithful = unfaithful_layers(
                self._plain, self._example,
                [n for n in self.layer_order if n != self.classifier], self._sample_request,
                lambda removed: self.expand(removed, checked=False),
                lambda keep: shrink_model(self._plain, self._example, keep))
        return self._unfaithful

    def _sample_request(self, name: str) -> list[int]:
        self._build()
        channels = self._modules[name].weight.shape[0]
        return lowest_channels(torch.arange(channels, dtype=torch.float), RATIO,
                               self.heads.get(name), self.groups.get(name, 1))

    def trace(self) -> None:
        """Build the dependency graph now, not at its first use (an untraceable model fails)."""
        self._build()

    def __getstate__(self) -> dict:
        # The traced graph holds closures that do not pickle (Ray ships contexts to workers):
        # keep the plain model and rebuild the graph where it is used.
        self.unfaithful      # found here, shipped with the state
        state = {k: v for k, v in self.__dict__.items() if k not in ("_modules", "_names")}
        return {**state, "_graph": None}

    def expand(self, removed: Mapping[str, Sequence[int]], checked: bool = True
               ) -> dict[str, list[int]]:
        """Output channels removed per module (layers and norms) once couplings are followed.

        ``removed`` maps prunable layer names to channel indices. Requests for the classifier, and
        groups that would reach the model's output, a transformer's residual stream or the outputs
        of a tied weight, or leave a grouped convolution invalid (``fits_conv_groups``), are ignored
        (the output shape and the embedding width must not change), and so are the layers in
        ``unfaithful`` (``checked=False``: not, to find them).
        """
        graph = self._build()
        skipped = self.unfaithful if checked else {}
        result: dict[str, set[int]] = {}
        for name in self._ordered(removed):
            idxs = sorted(set(int(i) for i in removed[name]))
            if not idxs or name in result or name == self.classifier or name in skipped:
                continue
            module = self._modules[name]
            group = graph.get_pruning_group(module, _out_channel_fn(module), idxs)
            found = _out_targets(graph, self._names, group)
            if (blocked(found, self._fixed)
                    or not graph.check_pruning_group(group) or not fits_conv_groups(graph, group)):
                continue
            for target, target_idxs in found.items():
                result.setdefault(target, set()).update(target_idxs)
        return {name: sorted(idxs) for name, idxs in result.items()}

    def _ordered(self, names) -> list[str]:
        unknown = sorted(set(names) - set(self.layer_order))
        if unknown:
            raise ValueError(f"unknown prunable layers {unknown}; valid: {self.layer_order}")
        return [name for name in self.layer_order if name in names]


def _out_targets(graph: tp.DependencyGraph, names: Mapping[int, str], group
                 ) -> dict[str, list[int]]:
    """Named modules whose output channels a group removes, with the indices."""
    found: dict[str, list[int]] = {}
    for dep, idxs in group:
        if not graph.is_out_channel_pruning_fn(dep.handler):
            continue
        name = names.get(id(dep.target.module))
        if name is not None:
            found.setdefault(name, []).extend(int(i) for i in idxs)
    return found


def removal_indices(model: nn.Module, request: ChannelRequest, *, criterion: str = "magnitude",
                    seed: int = 0, groups: Mapping[str, int] | None = None
                    ) -> dict[str, list[int]]:
    """Channel indices to remove per layer from keep-masks or ratios.

    A mask is a boolean keep-mask over output channels (1-D) or over the weight (a channel goes when
    all its weights are masked). A ratio removes the ``round(ratio * channels)`` lowest-scoring
    channels by ``criterion`` (data-free criteria only: magnitude, l2, random, fpgm); for an
    attention projection, whole heads; for a layer in ``groups`` (``conv_groups``), the same
    positions of each block (``lowest_channels``).
    """
    groups = groups or {}
    modules = dict(model.named_modules())
    heads = head_dims(model)[0]
    scorer = None
    removed: dict[str, list[int]] = {}
    for name, value in request.items():
        if name not in modules or layer_kind(modules[name]) is None:
            raise ValueError(f"'{name}' is not a Conv2d / Linear layer of the model")
        weight = modules[name].weight.detach()
        if isinstance(value, torch.Tensor):
            keep = value.to(torch.bool)
            if keep.dim() > 1:
                keep = keep.reshape(keep.shape[0], -1).any(dim=1)
            if keep.shape[0] != weight.shape[0]:
                raise ValueError(f"mask for '{name}' has {keep.shape[0]} channels, "
                                 f"the layer has {weight.shape[0]}")
            removed[name] = (~keep).nonzero().flatten().tolist()
            continue
        if scorer is None:
            scorer = get_criterion(criterion)
            if scorer.needs_data:
                raise ValueError(f"shrink_model with ratios needs a data-free criterion; "
                                 f"'{criterion}' needs gradients: pass channel masks instead")
        scores = scorer.channel_score(weight, layer_name=name, seed=seed)
        removed[name] = lowest_channels(scores, float(value), heads.get(name),
                                        groups.get(name, 1))
    return removed


def shrink_model(model: nn.Module, example_input: torch.Tensor, channel_masks_or_ratios: ChannelRequest,
                 *, criterion: str = "magnitude", seed: int = 0, inplace: bool = False) -> nn.Module:
    """A physically smaller model without the requested output channels (and all coupled ones).

    Args:
        model: the model; parametrizations (masks, fake quantization) are folded in first.
        example_input: a batch the model accepts, for tracing the dependency graph.
        channel_masks_or_ratios: layer name -> keep-mask (1-D over output channels, or weight-shaped:
            e.g. ``current_masks(model)`` of a channel-pruned model) or ratio of channels to remove.
        criterion: ranks channels for ratio requests (magnitude, l2, random, fpgm).
        seed: seed of the ``random`` criterion.
        inplace: modify ``model`` itself instead of a deep copy.

    Returns:
        The shrunk model (same output shape). The classifier's outputs are never removed.
    """
    target = fold(model) if inplace else folded_copy(model)
    was_training = target.training
    target.eval()
    with torch.no_grad():
        shape_before = tuple(target(example_input).shape)
    found = discover(target, tuple(example_input.shape[1:]))
    layers, classifier, fixed = found.layers, found.classifier, fixed_outputs(target, found)
    graph = tp.DependencyGraph().build_dependency(target, example_inputs=example_input, verbose=False)
    modules = dict(target.named_modules())
    names = {id(module): name for name, module in modules.items()}
    ratios = [layer.name for layer in layers if layer.name != classifier
              and not isinstance(channel_masks_or_ratios.get(layer.name, 0.0), torch.Tensor)]
    removed = removal_indices(target, channel_masks_or_ratios, criterion=criterion, seed=seed,
                              groups=conv_groups(graph, modules, ratios))
    done: set[str] = set()
    for layer in layers:
        name = layer.name
        idxs = removed.get(name)
        if not idxs or name in done or name == classifier:
            continue
        module = modules[name]
        group = graph.get_pruning_group(module, _out_channel_fn(module), sorted(set(idxs)))
        touched = _out_targets(graph, names, group)
        if (blocked(touched, fixed) or not graph.check_pruning_group(group)
                or not fits_conv_groups(graph, group)):
            continue
        done.update(touched)
        group.prune()
    with torch.no_grad():
        shape_after = tuple(target(example_input).shape)
    if shape_after != shape_before:
        raise RuntimeError(f"shrinking changed the output shape {shape_before} -> {shape_after}")
    target.train(was_training)
    return target
