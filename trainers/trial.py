"""Evaluate one candidate: train it with its schedule, measure it. Backend-independent."""
from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from spaces.candidate import Candidate
from spaces.trial_result import TrialResult
from trainers import method_parts
from trainers.costs.analytic import analytic_costs
from trainers.costs.latency import cached_latency_ms, latency_key
from trainers.costs.meters import make_meter
from trainers.costs.model_basis import cost_basis
from trainers.eval_context import EvalContext
from trainers.export_form import exported_form
from trainers.method_parts import PreparedCandidate, prepare_candidate
from trainers.pruning.masks import current_masks
from trainers.pruning.validity import dead_output_reason
from trainers.rungs import RungCheck
from trainers.schedules import ScheduleResult, run_schedule
from trainers.training import measure_metric


def build_candidate_model(candidate: Candidate, context: EvalContext) -> nn.Module:
    """The dense reference with the candidate's masks and bit-widths attached (not trained)."""
    return prepare_candidate(candidate, context).model


def cost_metrics(candidate: Candidate, context: EvalContext, model: nn.Module | None = None,
                 exported: nn.Module | None = None) -> dict[str, float]:
    """Metrics known before training: FLOPs, bit-operations, size, inference energy.

    Per-weight sparsity scales the dense model's cost basis (read from ``model``'s masks when given:
    exact whatever the granularity rounded); channel pruning is costed on the
    physically smaller model (FlopCounterMode's count of it), with no sparsity left on top.
    ``model`` is the candidate's trained model when there is one (else it is rebuilt untrained:
    its shape, hence its cost, is the same); ``exported``: its ``exported_form``, when made already.
    """
    bits = {layer.name: candidate.bits.get(layer.name, 32) for layer in context.layers}
    if candidate.granularity != "channel":
        basis, sparsity = context.cost_basis, candidate.sparsity
        if model is not None:
            sparsity = mask_sparsity(model) or sparsity
    else:
        if exported is None:
            model = build_candidate_model(candidate, context) if model is None else model
            exported = exported_form(model, candidate, context)
        basis = cost_basis(exported, context.data.input_shape)
        sparsity = {}
    return analytic_costs(basis, sparsity, bits, context.profile,
                          activation_bits=context.activation_bits,
                          granularity=cost_granularity(candidate, context))


def mask_sparsity(model: nn.Module) -> dict[str, float]:
    """Per-layer fraction of weights the attached masks remove (empty when none are attached)."""
    return {name: 1.0 - float(mask.sum()) / mask.numel()
            for name, mask in current_masks(model).items()}


def cost_granularity(candidate: Candidate, context: EvalContext) -> str:
    """The granularity as the cost model reads it: ``n:m`` becomes ``n:M`` with M the block size
    (N varies per layer; the pattern costs log2(M) bits per kept weight)."""
    if candidate.granularity == "n:m":
        return f"n:{context.pruning.nm_block}"
    return candidate.granularity


def known_costs(candidate: Candidate, context: EvalContext,
                prepared: PreparedCandidate | None = None) -> dict[str, float]:
    """The costs early stopping places a candidate with before training: from its sparsity, or
    for channel granularity from the pruned shapes of ``prepared`` (not pruned again)."""
    channel = prepared is not None and candidate.granularity == "channel"
    return cost_metrics(candidate, context, prepared.model if channel else None)


def inference_latency(model: nn.Module, candidate: Candidate, context: EvalContext,
                      exported: nn.Module | None = None) -> dict[str, float]:
    """``latency_ms`` of the exported form of ``model`` (empty when latency is turned off),
    measured once per distinct exported shape in this context (see ``cached_latency_ms``)."""
    if not context.latency.enabled:
        return {}
    if exported is None and candidate.granularity == "channel":
        exported = exported_form(model, candidate, context)    # smaller shapes than ``model``
    if exported is not None:
        timed, export = exported, None
    else:   # the folded copy has ``model``'s shapes: made only when they are new
        timed, export = model, (lambda: exported_form(model, candidate, context))
    cache = context.extras.setdefault("latency_ms", {})
    return {"latency_ms": cached_latency_ms(timed, context.data.input_shape, context.device,
                                            context.latency, cache, export=export)}


def remember_dense_latency(context: EvalContext, dense_reference: Mapping[str, float] | None,
                           threads: int | None) -> None:
    """Use the stored dense reference's ``latency_ms`` (the study's ``dense_reference``, timed at
    ``threads`` torch threads) for the dense shapes in this process (a resumed study, another
    worker) when it runs at that thread count: unstructured and N:M candidates run those shapes,
    and timing them again would give the same models another figure, with noise, on every
    resume. A process with another thread count times them itself (another figure, rightly)."""
    latency_ms = (dense_reference or {}).get("latency_ms")
    if latency_ms is None or not context.latency.enabled or threads != torch.get_num_threads():
        return
    model = method_parts.dense_model(context)
    key = latency_key(model, context.data.input_shape, context.device, context.latency)
    context.extras.setdefault("latency_ms", {}).setdefault(key, float(latency_ms))


def train_candidate(candidate: Candidate, context: EvalContext,
                    rung_check: RungCheck | None = None,
                    prepared: PreparedCandidate | None = None) -> ScheduleResult:
    """Train the candidate with its schedule, seeded: the one training path of a trial.

    ``evaluate_candidate`` and export both call this, so an exported model is the model its
    trial measured. ``prepared``: the candidate pruned already (``prepare_candidate``).
    """
    torch.manual_seed(candidate.seed)
    return run_schedule(candidate, context, rung_check, prepared)


def evaluate_candidate(candidate: Candidate, context: EvalContext,
                       rung_check: RungCheck | None = None,
                       prepared: PreparedCandidate | None = None) -> TrialResult:
    """Train the candidate with its schedule (prune + fine-tune, or prune during training from
    scratch) and measure it; the selection metric is validation accuracy. ``rung_check`` may stop
    the training early by raising ``trainers.rungs.StopCandidate``. ``prepared``: the candidate
    pruned once already (its masks judge validity, one-shot training goes on from it)."""
    prepared = prepared or prepare_candidate(candidate, context)
    invalid = invalid_reason(candidate, context, prepared)
    if invalid:  # rejected before training; the study records the reason
        return TrialResult(candidate, {}, "invalid", {"fail_reason": invalid})
    comparison = None
    if candidate.schedule == "during_training":
        comparison = method_parts.dense_training_cost(context, method_parts.from_scratch_settings(context),
                                                candidate.seed)
    meter = make_meter(context.energy_meter, context.watts_per_core, device=context.device,
                       powercap_root=context.powercap_root)
    meter.start()
    run = train_candidate(candidate, context, rung_check, prepared)
    training = meter.stop()
    exported = None
    if candidate.granularity == "channel":          # made once, costed and timed
        exported = exported_form(run.model, candidate, context)
    metrics = cost_metrics(candidate, context, run.model, exported)
    metrics["accuracy"] = measure_metric(run.model, context.data.val, context.device,
                                         context.metric_fn)
    if context.measure_test:
        metrics["test_accuracy"] = measure_metric(run.model, context.data.test, context.device,
                                                  context.metric_fn)
    metrics.update(
        train_energy_j=training.joules,
        train_seconds=training.seconds,
        train_flops=run.train_flops,
    )
    metrics.update(inference_latency(run.model, candidate, context, exported))
    info = {"energy_source": training.source}
    if candidate.granularity == "n:m":
        info["sparsity_pattern"] = f"N:{context.pruning.nm_block}"
    if comparison is not None:
        metrics.update(training_savings(metrics, comparison, run))
        info["dense_train_energy_source"] = comparison["source"]
    return TrialResult(candidate, metrics, "complete", info)


def invalid_reason(candidate: Candidate, context: EvalContext,
                   prepared: PreparedCandidate | None = None) -> str | None:
    """Why the candidate cuts a model output off from its input (None: it doesn't).

    Judged on the masks the candidate's criterion gives the dense reference at the target
    sparsity (``prepared``'s, before it trains): exact for ``oneshot``, the target state of the
    other schedules.
    """
    if not any(s > 0 for s in candidate.sparsity.values()):
        return None
    with torch.random.fork_rng(devices=[]):   # judging a candidate must not move the seed
        model = (prepared or prepare_candidate(candidate, context)).model
    masks = current_masks(model)
    return dead_output_reason(context.model_factory, masks, context.layers,
                              context.data.input_shape)


def training_savings(metrics: dict[str, float], dense: dict, run: ScheduleResult
                     ) -> dict[str, float]:
    """Training time, energy and FLOPs saved against training the dense model from scratch for
    the same epochs (fractions: 0.3 means 30% less)."""
    flops_dense = run.train_flops_dense or dense["flops"]
    return {
        "train_seconds_dense": dense["seconds"],
        "train_energy_j_dense": dense["energy_j"],
        "train_flops_dense": flops_dense,
        "train_time_saved": 1.0 - metrics["train_seconds"] / max(dense["seconds"], 1e-12),
        "train_energy_saved": 1.0 - metrics["train_energy_j"] / max(dense["energy_j"], 1e-12),
        "train_flops_saved": 1.0 - run.train_flops / max(flops_dense, 1e-12),
    }


def reference_metrics(dense_candidate: Candidate, context: EvalContext) -> dict[str, float]:
    """The dense reference as trained (no pruning, no fine-tuning): the point every front is read
    against."""
    model = method_parts.dense_model(context)
    metrics = cost_metrics(dense_candidate, context)
    metrics.update(
        accuracy=measure_metric(model, context.data.val, context.device, context.metric_fn),
        test_accuracy=measure_metric(model, context.data.test, context.device, context.metric_fn))
    metrics.update(inference_latency(model, dense_candidate, context))
    return metrics
