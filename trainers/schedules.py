"""Schedules: when pruning happens relative to training.

- ``oneshot``: prune the trained dense model once, then fine-tune with the masks.
- ``gradual``: fine-tune while sparsity rises on the cubic schedule of Zhu & Gupta 2017 (AGP),
  s_k = s_final * (1 - (1 - k/n)^3) at n evenly spaced steps over the first ``gradual_end`` of the
  fine-tune steps, masks recomputed at each step (pruned weights stay pruned).
- ``during_training``: train from scratch, prune after ``prune_at`` of the epochs and keep training
  the smaller network. With ``channel`` granularity the model is physically shrunk at the cut, so
  the remaining epochs are cheaper; the trial records the time and energy saved against training
  the dense model for the same epochs.
A regularisation penalty (``options['reg']``) is active until the last cut; distillation
(``options['distill']``) is active while the pruned model trains.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, ClassVar

from torch import nn

from spaces.candidate import Candidate
from trainers import method_parts
from trainers.eval_context import EvalContext
from trainers.pruning.granularity import PruneMasks
from trainers.pruning.masks import attach
from trainers.pruning.structured import shrink_model
from trainers.regularization import combine
from trainers.rungs import RungCheck
from trainers.training import measure_metric, train_epochs


@dataclass
class ScheduleResult:
    """A trained candidate model.

    Attributes:
        model: the trained model (masked; physically shrunk when ``shrunk``).
        masks: the final masks (empty when the model was shrunk instead).
        shrunk: True when channels were physically removed during training.
        train_flops: analytic training FLOPs the schedule spent (3 x forward per sample-step).
        train_flops_dense: the same for dense training over the same epochs (during_training).
    """

    model: nn.Module
    masks: PruneMasks = field(default_factory=PruneMasks)
    shrunk: bool = False
    train_flops: float = 0.0
    train_flops_dense: float | None = None


class Schedule:
    name: ClassVar[str] = ""

    def run(self, candidate: Candidate, context: EvalContext,
            rung_check: RungCheck | None = None,
            prepared: method_parts.PreparedCandidate | None = None) -> ScheduleResult:
        """Train ``candidate``; ``rung_check`` (used by schedules whose fine-tune accuracy part-way
        is a fair preview of the final one: ``oneshot``) may stop it early. ``prepared``: the
        candidate already pruned once (``method_parts.prepare_candidate``), which a schedule that
        starts from the pruned dense reference trains instead of pruning again."""
        raise NotImplementedError


def _train(model, settings, context, candidate, **kwargs) -> None:
    train_epochs(model, context.data.train, settings, batch_size=context.batch_size,
                 device=context.device, seed=candidate.seed, loss_fn=context.loss_fn, **kwargs)


class OneShot(Schedule):
    """Prune the trained dense model at the target sparsity, then fine-tune."""

    name = "oneshot"

    def run(self, candidate, context, rung_check=None, prepared=None):
        penalty = method_parts.make_penalty(candidate)
        flops = 0.0
        if penalty is not None and context.pruning.reg_epochs > 0:   # prunes after a warm-up
            model = method_parts.dense_model(context)
            pruner = method_parts.make_pruner(candidate, context)
            warmup = replace(context.finetune, epochs=context.pruning.reg_epochs)
            _train(model, warmup, context, candidate, extra_loss=penalty)
            flops += method_parts.train_flops(model, context, warmup.epochs)
            masks = pruner.step(model)
        elif prepared is not None and prepared.candidate == candidate:
            model, masks = prepared.take()
        else:
            model = method_parts.dense_model(context)
            masks = method_parts.make_pruner(candidate, context).step(model)
        settings = method_parts.finetune_settings(candidate, context)
        _train(model, settings, context, candidate,
               extra_loss=method_parts.make_distillation(candidate, context),
               on_epoch=rung_hook(model, context, rung_check, settings.epochs))
        flops += method_parts.train_flops(model, context, settings.epochs)
        flops += method_parts.teacher_flops(candidate, context, settings.epochs)
        return ScheduleResult(model, masks, train_flops=flops)


def rung_hook(model: nn.Module, context: EvalContext, check: RungCheck | None,
              epochs: int) -> Callable[[int], None] | None:
    """An ``on_epoch`` callback for ``train_epochs`` of ``epochs`` epochs: after each epoch in
    ``check.rungs`` (before the last) it measures validation accuracy and calls
    ``check(epoch, accuracy)``, which may raise ``StopCandidate``."""
    rungs = tuple(e for e in (check.rungs if check else ()) if 0 < e < epochs)
    if check is None or not rungs:
        return None

    def on_epoch(epoch: int) -> None:   # called before epoch ``epoch``: ``epoch`` are done
        if epoch in rungs:
            accuracy = measure_metric(model, context.data.val, context.device, context.metric_fn)
            model.train()
            check(epoch, accuracy)

    return on_epoch


def agp_steps(total_steps: int, steps: int, end: float) -> dict[int, float]:
    """Optimizer step -> fraction of the final sparsity (cubic AGP), the last one being 1.0."""
    if total_steps <= 0:
        return {0: 1.0}
    last = max(0, min(total_steps - 1, int(end * total_steps)))
    plan: dict[int, float] = {}
    for k in range(1, steps + 1):
        at = min(last, round(k * last / steps))
        plan[at] = 1.0 - (1.0 - k / steps) ** 3
    return plan


class Gradual(Schedule):
    """Fine-tune while the sparsity rises on the AGP cubic schedule."""

    name = "gradual"

    def run(self, candidate, context, rung_check=None, prepared=None):
        model = method_parts.dense_model(context)
        pruner = method_parts.make_pruner(candidate, context)
        penalty = method_parts.make_penalty(candidate)
        settings = method_parts.finetune_settings(candidate, context)
        total = settings.epochs * method_parts.steps_per_epoch(context)
        plan = agp_steps(total, context.pruning.gradual_steps, context.pruning.gradual_end)
        last_step = max(plan)
        pruner.step(model, 0.0)          # quantizers on, nothing pruned yet
        if total == 0:
            pruner.step(model, 1.0)
            return ScheduleResult(model, pruner.last or PruneMasks())

        def on_step(step: int) -> None:
            if step in plan:
                pruner.step(model, plan[step])
            if penalty is not None and step >= last_step:
                penalty.active = False

        _train(model, settings, context, candidate, on_step=on_step,
               extra_loss=combine(penalty, method_parts.make_distillation(candidate, context)))
        flops = (method_parts.train_flops(model, context, settings.epochs)
                 + method_parts.teacher_flops(candidate, context, settings.epochs))
        return ScheduleResult(model, pruner.last or PruneMasks(), train_flops=flops)


class DuringTraining(Schedule):
    """Train from scratch, prune early, keep training the smaller network."""

    name = "during_training"

    def run(self, candidate, context, rung_check=None, prepared=None):
        settings = method_parts.from_scratch_settings(context)
        total = settings.epochs
        cut = cut_epoch(context.pruning.prune_at, total)
        model = context.model_factory().to(context.device)
        pruner = method_parts.make_pruner(candidate, context)
        penalty = method_parts.make_penalty(candidate)
        distill = method_parts.make_distillation(candidate, context)
        dense_flops = method_parts.train_flops(model, context, total)
        _train(model, replace(settings, epochs=cut), context, candidate,
               lr_window=(0, total), extra_loss=combine(penalty, distill))
        flops = method_parts.train_flops(model, context, cut)
        masks = pruner.compute(model)
        shrunk = candidate.granularity == "channel"
        if shrunk:
            model = shrink_model(model, method_parts.example_input(context), masks.channels, inplace=True)
            attach(model, {}, candidate.bits)
            masks = PruneMasks()
        else:
            pruner.apply(model, masks)
        _train(model, replace(settings, epochs=total - cut), context, candidate,
               lr_window=(cut, total), extra_loss=distill)
        flops += method_parts.train_flops(model, context, total - cut)
        flops += method_parts.teacher_flops(candidate, context, total)   # both phases distil
        return ScheduleResult(model, masks, shrunk=shrunk, train_flops=flops,
                              train_flops_dense=dense_flops)


def cut_epoch(prune_at: float, total: int) -> int:
    """The epoch ``during_training`` prunes at: ``prune_at`` of ``total``, rounded, but at least
    one dense epoch when ``prune_at`` > 0 and at least one pruned epoch (0.2 of 2 epochs rounded
    to 0, pruning at initialisation although ``prune_at`` asked for dense training first)."""
    cut = int(round(prune_at * total))
    if prune_at > 0 and total > 1:
        cut = min(max(cut, 1), total - 1)
    return cut


SCHEDULES: dict[str, Callable[[], Schedule]] = {
    cls.name: cls for cls in (OneShot, Gradual, DuringTraining)}


def get_schedule(name: str) -> Schedule:
    if name not in SCHEDULES:
        raise ValueError(f"schedule must be one of {list(SCHEDULES)}, got '{name}'")
    return SCHEDULES[name]()


def run_schedule(candidate: Candidate, context: EvalContext,
                 rung_check: RungCheck | None = None,
                 prepared: method_parts.PreparedCandidate | None = None) -> ScheduleResult:
    """Train the candidate with its schedule (``rung_check``, ``prepared``: see
    ``Schedule.run``)."""
    return get_schedule(candidate.schedule).run(candidate, context, rung_check, prepared)
