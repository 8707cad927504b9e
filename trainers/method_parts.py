"""The parts of one candidate's pruning method, built from the study context.

Schedules (``trainers.schedules``) combine these: the dense starting point, the ``Pruner``, the
regularisation penalty, the distillation term and the fine-tune settings. Things that are the same
for every trial of a study (the channel coupling of the architecture, the distillation teacher,
the dense training cost) are built once and cached in ``context.extras``.
"""
from __future__ import annotations

import math
from dataclasses import replace

import torch
from torch import nn
from torch.utils.data import DataLoader

from spaces.candidate import Candidate
from trainers.costs.flops import dense_flops
from trainers.costs.meters import make_meter
from trainers.discovery import discover
from trainers.distillation import Distillation
from trainers.eval_context import EvalContext
from trainers.pruning.pruner import Pruner
from trainers.pruning.structured import ChannelCoupling
from trainers.regularization import Penalty, penalty_kind
from trainers.train_settings import TrainSettings
from trainers.training import iterate_batches, train_epochs

# Backward + forward of a training step cost about three forward passes (the usual convention).
TRAIN_FLOPS_PER_FORWARD = 3


def dense_model(context: EvalContext) -> nn.Module:
    """A fresh copy of the trained dense reference on the context's device."""
    model = context.model_factory()
    model.load_state_dict(context.dense_state)
    return model.to(context.device)


def example_input(context: EvalContext) -> torch.Tensor:
    return torch.zeros((1, *context.data.input_shape), device=context.device)


def channel_coupling(context: EvalContext) -> ChannelCoupling:
    """The architecture's channel dependencies (traced once per context)."""
    if "channel_coupling" not in context.extras:
        probe = context.model_factory().to(context.device)
        context.extras["channel_coupling"] = ChannelCoupling(probe, example_input(context))
    return context.extras["channel_coupling"]


def make_pruner(candidate: Candidate, context: EvalContext) -> Pruner:
    """A ``Pruner`` whose data-driven criteria read the first ``score_batches`` training batches."""
    def batches():
        generator = torch.Generator().manual_seed(candidate.seed)
        stream = iterate_batches(context.data.train, context.batch_size, context.device,
                                 shuffle=True, generator=generator)
        for i, batch in enumerate(stream):
            if i >= context.pruning.score_batches:
                break
            yield batch

    coupling = channel_coupling(context) if candidate.granularity == "channel" else None
    return Pruner(candidate, input_shape=tuple(context.data.input_shape),
                  settings=context.pruning, batches=batches, coupling=coupling,
                  loss_fn=context.loss_fn)


def make_penalty(candidate: Candidate) -> Penalty | None:
    """The candidate's regularisation (``options['reg']`` > 0) over the layers it prunes."""
    strength = float(candidate.options.get("reg", 0.0))
    pruned = [name for name, s in candidate.sparsity.items() if s > 0]
    if strength <= 0 or not pruned:
        return None
    return Penalty(penalty_kind(candidate.granularity), strength, pruned)


def make_distillation(candidate: Candidate, context: EvalContext) -> Distillation | None:
    """Distillation from the dense reference when ``options['distill']`` is on."""
    if not candidate.options.get("distill", False):
        return None
    if "teacher" not in context.extras:
        context.extras["teacher"] = dense_model(context)
    settings = context.pruning
    return Distillation(context.extras["teacher"], settings.distill_temperature,
                        settings.distill_weight)


def finetune_settings(candidate: Candidate, context: EvalContext) -> TrainSettings:
    """The fine-tune phase, with the candidate's epochs when the space searches them."""
    epochs = candidate.options.get("finetune_epochs")
    return context.finetune if epochs is None else replace(context.finetune, epochs=int(epochs))


def from_scratch_settings(context: EvalContext) -> TrainSettings:
    """Settings of ``during_training``: the dense reference's, over ``pruning.during_epochs``."""
    base = context.dense_train or context.finetune
    epochs = context.pruning.during_epochs or base.epochs
    return replace(base, epochs=epochs)


def forward_flops(model: nn.Module, context: EvalContext) -> float:
    """FLOPs of one forward pass of one sample, as the model physically runs (masks ignored):
    its layers plus the weight-free products (attention)."""
    found = discover(model, tuple(context.data.input_shape))
    return float(dense_flops(found.layers) + found.free_flops)


def train_samples(context: EvalContext) -> int:
    """Samples in the training split (a user's ``DataLoader`` counts its data set)."""
    train = context.data.train
    return len(train.dataset) if isinstance(train, DataLoader) else len(train)


def train_flops(model: nn.Module, context: EvalContext, epochs: int) -> float:
    """Analytic training FLOPs of ``epochs`` epochs of ``model`` over the training split."""
    return TRAIN_FLOPS_PER_FORWARD * forward_flops(model, context) * train_samples(context) * epochs


def steps_per_epoch(context: EvalContext) -> int:
    train = context.data.train
    if isinstance(train, DataLoader):
        return len(train)
    return math.ceil(len(train) / context.batch_size)


def dense_training_cost(context: EvalContext, settings: TrainSettings, seed: int) -> dict:
    """Measured time and energy of training the dense model from scratch for ``settings.epochs``
    (the comparison point of ``during_training``); measured once per context and epochs."""
    cache = context.extras.setdefault("dense_training_cost", {})
    key = (settings.epochs, seed)
    if key not in cache:
        torch.manual_seed(seed)
        model = context.model_factory().to(context.device)
        meter = make_meter(context.energy_meter, context.watts_per_core, device=context.device,
                           powercap_root=context.powercap_root)
        meter.start()
        train_epochs(model, context.data.train, settings, batch_size=context.batch_size,
                     device=context.device, seed=seed, loss_fn=context.loss_fn)
        reading = meter.stop()
        cache[key] = {"seconds": reading.seconds, "energy_j": reading.joules,
                      "source": reading.source,
                      "flops": train_flops(model, context, settings.epochs)}
    return cache[key]
