"""Evaluate one candidate: prune the dense reference, fine-tune, measure. Backend-independent."""
from __future__ import annotations

import torch
from torch import nn

from spaces.candidate import Candidate
from spaces.result import TrialResult
from trainers.context import EvalContext
from trainers.costs import (analytic_costs, cost_basis, inference_copy, make_meter,
                            measure_latency_ms)
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


def _shrinker(candidate: Candidate, context: EvalContext):
    """How the candidate's model is made physically smaller at export (None: masks only)."""
    if candidate.granularity != "channel":
        return None
    raise ValueError("channel granularity needs trainers.pruning.structured.shrink_model (issue 3)")


def cost_metrics(candidate: Candidate, context: EvalContext) -> dict[str, float]:
    """Metrics known before training: FLOPs, bit-operations, size, inference energy.

    Per-weight sparsity scales the dense model's cost basis; channel pruning is costed on the
    physically smaller model (FlopCounterMode's count of it), with no sparsity left on top.
    """
    bits = {layer.name: candidate.bits.get(layer.name, 32) for layer in context.layers}
    shrink = _shrinker(candidate, context)
    if shrink is None:
        basis, sparsity = context.cost_basis, candidate.sparsity
    else:
        basis = cost_basis(inference_copy(build_candidate_model(candidate, context), shrink),
                           context.data.input_shape)
        sparsity = {}
    return analytic_costs(basis, sparsity, bits, context.profile,
                          activation_bits=context.activation_bits,
                          granularity=candidate.granularity)


def inference_latency(model: nn.Module, candidate: Candidate, context: EvalContext
                      ) -> dict[str, float]:
    """``latency_ms`` of the exported form of ``model`` (empty when latency is turned off)."""
    if not context.latency.enabled:
        return {}
    exported = inference_copy(model, _shrinker(candidate, context))
    return {"latency_ms": measure_latency_ms(exported, context.data.input_shape, context.device,
                                             context.latency)}


def evaluate(candidate: Candidate, context: EvalContext) -> TrialResult:
    """Prune, fine-tune and measure one candidate; selection metric is validation accuracy."""
    torch.manual_seed(candidate.seed)
    model = build_candidate_model(candidate, context)
    meter = make_meter(context.energy_meter, context.watts_per_core, device=context.device,
                       powercap_root=context.powercap_root)
    meter.start()
    train_epochs(model, context.data.train, context.finetune, batch_size=context.batch_size,
                 device=context.device, seed=candidate.seed, loss_fn=context.loss_fn)
    training = meter.stop()
    metrics = cost_metrics(candidate, context)
    metrics.update(
        accuracy=evaluate_metric(model, context.data.val, context.device, context.metric_fn),
        test_accuracy=evaluate_metric(model, context.data.test, context.device, context.metric_fn),
        train_energy_j=training.joules,
        train_seconds=training.seconds,
    )
    metrics.update(inference_latency(model, candidate, context))
    return TrialResult(candidate, metrics, "complete", {"energy_source": training.source})


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
    metrics.update(inference_latency(model, dense_candidate, context))
    return metrics
