"""Rung 0: a candidate measured right after pruning and quantizing, before any fine-tuning.

Seconds per candidate: where the model has batch norm, its running statistics are re-estimated on
a few training batches first (pruning shifts every activation's mean and variance, so the dense
statistics would make a good candidate look broken); then one pass over the validation split
(or a fixed calibration subset of it: ``samples``, drawn once, the same for every candidate)
gives the candidate's metric and its disagreement with the dense reference (mean KL divergence
of the dense model's predicted distribution to the candidate's, over the same samples). The
model is left exactly as it was (statistics restored, random state untouched), so what it trains
from afterwards does not depend on whether it was screened.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import update_bn

from trainers import method_parts
from trainers.data.splits import Split, calibration_subset
from trainers.eval_context import EvalContext
from trainers.training import accuracy_metric, iterate_batches, predict


@dataclass(frozen=True)
class Rung0:
    """A candidate's figures before fine-tuning (``kl``: NaN when the outputs are not logits)."""

    accuracy: float
    kl: float
    seconds: float
    samples: int | None = None    # the calibration subset's size (None: the whole split)

    def attrs(self) -> dict[str, float]:
        """As trial user attributes (``rung0_samples`` only when a subset was measured)."""
        figures = {"rung0_accuracy": self.accuracy, "rung0_kl": self.kl,
                   "rung0_seconds": self.seconds}
        return figures if self.samples is None else {**figures, "rung0_samples": self.samples}


def measure_rung0(model: nn.Module, context: EvalContext, seed: int, bn_batches: int,
                  samples: int | None = None) -> Rung0:
    """Re-estimate ``model``'s batch-norm statistics on ``bn_batches`` training batches (when it
    has batch norm), measure it on at most ``samples`` validation samples (None: all of them),
    then put the statistics back."""
    started = time.perf_counter()
    split = calibration_split(context, samples)
    saved = _norm_buffers(model)
    with torch.random.fork_rng(devices=[]):
        if saved and bn_batches > 0:
            generator = torch.Generator().manual_seed(seed)
            stream = iterate_batches(context.data.train, context.batch_size, context.device,
                                     shuffle=True, generator=generator)
            batches = [x for (x, _), _ in zip(stream, range(bn_batches))]
            update_bn(batches, model)
        logits, targets = predict(model, split, context.device)
        for name, value in saved.items():
            model.get_buffer(name).copy_(value)
        accuracy = float((context.metric_fn or accuracy_metric)(logits, targets))
        kl = mean_kl(dense_logits(context, samples), logits)
    measured = None if split is context.data.val else len(targets)
    return Rung0(accuracy, kl, time.perf_counter() - started, measured)


def calibration_split(context: EvalContext, samples: int | None) -> Split:
    """The samples rung 0 measures (``calibration_subset`` of the validation split; built once
    per context and size)."""
    cache = context.extras.setdefault("rung0_splits", {})
    if samples not in cache:
        cache[samples] = calibration_subset(context.data.val, samples)
    return cache[samples]


def dense_logits(context: EvalContext, samples: int | None) -> torch.Tensor:
    """The dense reference's logits on ``calibration_split(context, samples)`` (computed once
    per context and size)."""
    cache = context.extras.setdefault("rung0_dense_logits", {})
    if samples not in cache:
        with torch.random.fork_rng(devices=[]):
            cache[samples], _ = predict(method_parts.dense_model(context),
                                        calibration_split(context, samples), context.device)
    return cache[samples]


def mean_kl(dense: torch.Tensor, candidate: torch.Tensor) -> float:
    """Mean KL(dense || candidate) of the softmax over the class dimension (dimension 1, as
    ``cross_entropy`` reads logits: (N, C) or (N, C, positions...)), per prediction; NaN when the
    outputs are not class scores (one output, or shapes that differ)."""
    if dense.shape != candidate.shape or dense.ndim < 2 or dense.shape[1] < 2 \
            or not dense.is_floating_point():
        return math.nan
    classes = dense.shape[1]
    target = F.log_softmax(dense.float(), dim=1).movedim(1, -1).reshape(-1, classes)
    inputs = F.log_softmax(candidate.float(), dim=1).movedim(1, -1).reshape(-1, classes)
    kl = F.kl_div(inputs, target, reduction="batchmean", log_target=True).item()
    return kl if math.isfinite(kl) else math.nan


def _norm_buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    """Copies of every batch-norm running statistic (empty: no batch norm)."""
    saved = {}
    for prefix, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats:
            for name, buffer in module.named_buffers(recurse=False):
                if buffer is not None:
                    saved[f"{prefix}.{name}" if prefix else name] = buffer.detach().clone()
    return saved
