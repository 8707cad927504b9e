"""Evaluate one candidate: prune the dense reference, fine-tune, measure. Backend-independent."""
from __future__ import annotations

import torch
from torch import nn

from spaces.candidate import Candidate
from spaces.result import TrialResult
from trainers.context import EvalContext
from trainers.costs import (dense_flops, effective_flops, inference_energy_uj, make_meter,
                            model_size_bytes, nonzero_params)
from trainers.pruning import prune_model
from trainers.training import evaluate as evaluate_metric
from trainers.training import train_epochs


def build_candidate_model(candidate: Candidate, context: EvalContext) -> nn.Module:
    """The dense reference with the candidate's masks and bit-widths attached (not trained)."""
    model = context.model_factory()
    model.load_state_dict(context.dense_state)
    model.to(context.device)
    prune_model(model, candidate)
    return model


def cost_metrics(candidate: Candidate, context: EvalContext) -> dict[str, float]:
    """Metrics known before training: FLOPs, bit-operations, size, inference energy."""
    layers = context.layers
    density = {layer.name: candidate.density(layer.name) for layer in layers}
    bits = {layer.name: candidate.bits.get(layer.name, 32) for layer in layers}
    act_bits = context.activation_bits
    return {
        "flops_dense": float(dense_flops(layers)),
        "flops": effective_flops(layers, density),
        "bops": sum(layer.macs * density[layer.name] * bits[layer.name] * act_bits
                    for layer in layers),
        "params_nonzero": float(nonzero_params(layers, candidate.sparsity, context.other_params)),
        "size_bytes": model_size_bytes(layers, candidate.sparsity, bits, context.other_params),
        "energy_uj": inference_energy_uj(layers, candidate.sparsity, bits, context.profile,
                                         activation_bits=act_bits),
    }


def evaluate(candidate: Candidate, context: EvalContext) -> TrialResult:
    """Prune, fine-tune and measure one candidate; selection metric is validation accuracy."""
    torch.manual_seed(candidate.seed)
    model = build_candidate_model(candidate, context)
    meter = make_meter(context.energy_meter, context.watts_per_core)
    meter.start()
    train_epochs(model, context.data.train, context.finetune, batch_size=context.batch_size,
                 device=context.device, seed=candidate.seed, loss_fn=context.loss_fn)
    train_energy_j, train_seconds = meter.stop()
    metrics = cost_metrics(candidate, context)
    metrics.update(
        accuracy=evaluate_metric(model, context.data.val, context.device, context.metric_fn),
        test_accuracy=evaluate_metric(model, context.data.test, context.device, context.metric_fn),
        train_energy_j=train_energy_j,
        train_seconds=train_seconds,
    )
    return TrialResult(candidate, metrics, "complete", {"energy_source": meter.source})


def reference_metrics(dense_candidate: Candidate, context: EvalContext) -> dict[str, float]:
    """The dense reference as trained (no pruning, no fine-tuning): the point every front is read
    against."""
    model = context.model_factory()
    model.load_state_dict(context.dense_state)
    model.to(context.device)
    metrics = cost_metrics(dense_candidate, context)
    metrics.update(
        accuracy=evaluate_metric(model, context.data.val, context.device, context.metric_fn),
        test_accuracy=evaluate_metric(model, context.data.test, context.device, context.metric_fn))
    return metrics
