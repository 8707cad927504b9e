"""The objective of every backend: one trial from candidate to stored metrics."""
from __future__ import annotations

import hashlib
import json
import math
import time
import traceback
from typing import Callable, Mapping, Sequence

import optuna
import torch
from optuna.trial import FrozenTrial, TrialState

from search.config import ExperimentConfig
from search.run.budget import (PROCESS_ATTRS, WORKER_ATTR, claim_epochs, claim_slot,
                               process_token)
from search.run.early_stopping import FrontRungCheck
from search.run.refine_settings import REFINED_KEY
from search.run.reliability import INTERRUPTED, RetryInterruptedTrial
from search.run.study_view import StudyView
from search.run.trial_writes import BufferedWrites
from spaces.candidate import SPARSITY_PREFIX, Candidate
from spaces.space import SearchSpace
from trainers.eval_context import EvalContext
from trainers.method_parts import prepare_candidate, previews_final, training_epochs
from trainers.rung0 import measure_rung0
from trainers.rungs import StopCandidate
from trainers.trial import evaluate_candidate, known_costs


class InvalidCandidate(RuntimeError):
    """The candidate was rejected before training (e.g. it cuts a model output off)."""


def make_objective(space: SearchSpace, context: EvalContext, config: ExperimentConfig, *,
                   guard_budget: bool = True) -> Callable[[optuna.Trial], list[float]]:
    """The trial function of every backend. ``guard_budget``: claim a budget slot first (for
    workers that share a study; Ray's ``num_samples`` already bounds its own trials)."""
    metrics = config.search.objectives.metrics
    fixed: dict = {}   # the study's fixed attributes, read by the first trial that needs them

    def objective(trial: optuna.Trial, writes: BufferedWrites) -> list[float]:
        trial.set_user_attr(WORKER_ATTR, process_token())
        view = StudyView(trial.study, fixed=fixed)   # read once: budget, duplicates, rungs
        trials = view.trials()
        if guard_budget:
            claim_slot(trial, config.search.n_trials, trials)
            if config.search.budget_epochs is not None:
                claim_epochs(trial, config.search.budget_epochs, config.reserve_epochs(), trials)
        candidate = space.suggest(trial)
        flat = json.loads(json.dumps(candidate.to_flat_dict()))   # as the storage returns it
        trial.set_user_attr("candidate", flat)
        if "origin" not in trial.user_attrs:   # enqueued and refined trials have theirs
            trial.set_user_attr("origin", "sampler")
        writes.flush()   # stored before training: a killed trial is retried from its parameters
        stopping = config.search.early_stopping.active(metrics)   # (a stop holds only then)
        twin = find_duplicate(trials, flat, stopped_too=stopping)
        if twin is not None:   # never pay twice: reuse the stored result (or stop)
            return reuse(trial, twin)
        check = None
        started = time.perf_counter()
        try:
            prepared = prepare_candidate(candidate, context)   # built and pruned once per trial
            if candidate.granularity == "channel" and candidate.schedule == "oneshot":
                built = built_channel_key(flat, prepared.masks.weights)
                trial.set_user_attr(CHANNEL_KEY, built)
                twin = find_duplicate(trials, built, CHANNEL_KEY, stopped_too=stopping)
                if twin is not None:   # other sparsities that remove the same channels
                    return reuse(trial, twin)
            if stopping:
                check = FrontRungCheck(view, metrics, config.search.objectives.directions,
                                       known_costs(candidate, context, prepared),
                                       config.search.early_stopping, trial=trial)
                screening = config.search.early_stopping.screening
                if screening.enabled and previews_final(candidate):
                    check.screen(measure_rung0(prepared.model, context, candidate.seed,
                                               screening.bn_batches, screening.samples).attrs(),
                                 screening)
            result = evaluate_candidate(candidate, context, check, prepared)
        except optuna.TrialPruned:   # a twin stopped early (``reuse``)
            raise
        except StopCandidate as stop:
            trial.set_user_attr("pruned_rung", stop.epoch)
            trial.set_user_attr("pruned_reason", stop.reason)
            trial.set_user_attr("finetune_epochs_done", stop.epoch)
            for key, value in check.costs.items():
                trial.set_user_attr(key, float(value))
            trial.set_user_attr("eval_seconds", time.perf_counter() - started)
            raise optuna.TrialPruned(stop.reason) from None
        except Exception as exc:
            trial.set_user_attr("fail_reason", f"{type(exc).__name__}: {exc}"[:500])
            trial.set_user_attr("fail_traceback", traceback.format_exc()[-4000:])
            raise
        if result.status == "invalid":
            reason = str(result.info.get("fail_reason", "invalid candidate"))
            trial.set_user_attr("invalid", True)
            trial.set_user_attr("fail_reason", f"invalid: {reason}"[:500])
            raise InvalidCandidate(reason)
        for key, value in result.metrics.items():
            trial.set_user_attr(key, float(value))
        for key, value in result.info.items():
            trial.set_user_attr(key, value)
        trial.set_user_attr("finetune_epochs_done", finetune_epochs(candidate, context))
        trial.set_user_attr("eval_seconds", time.perf_counter() - started)
        values = [float(result.metrics[m]) for m in metrics]
        bad = [f"{m}={v}" for m, v in zip(metrics, values) if not math.isfinite(v)]
        if bad:
            trial.set_user_attr("fail_reason", f"objective not finite: {', '.join(bad)}")
            raise FloatingPointError(f"objective not finite: {', '.join(bad)}")
        return values

    def interruptible(trial: optuna.Trial) -> list[float]:
        try:
            with BufferedWrites(trial) as writes:   # a trial's writes in 2 transactions, not ~50
                try:
                    return objective(trial, writes)
                except optuna.TrialPruned:
                    raise
                except Exception as exc:   # whatever it was, the trial says why it failed
                    if "fail_reason" not in trial.user_attrs:
                        trial.set_user_attr("fail_reason", f"{type(exc).__name__}: {exc}"[:500])
                        trial.set_user_attr("fail_traceback", traceback.format_exc()[-4000:])
                    raise
        except KeyboardInterrupt:     # Ctrl-C / SIGTERM: like a kill, but we can say so now
            try:
                trial.set_user_attr("fail_reason", INTERRUPTED)
                RetryInterruptedTrial()(trial.study,
                                        trial.study._storage.get_trial(trial._trial_id))
            except Exception:         # whatever happens, the interrupt must go on
                pass
            raise

    return interruptible


def finetune_epochs(candidate: Candidate, context: EvalContext) -> int:
    """Epochs a completed candidate trained (the unit of the search's training cost): its
    fine-tune epochs, or all it trained where the schedule trains more (``training_epochs``)."""
    return training_epochs(candidate, context)


def find_duplicate(trials: Sequence[FrozenTrial], candidate: dict | str,
                   key: str = "candidate", stopped_too: bool = True) -> FrozenTrial | None:
    """A finished trial (completed, else, with ``stopped_too``, stopped early) of exactly this
    candidate (its flat dict; values are on the space's grid; or, with ``key=CHANNEL_KEY``, the
    model it builds) among ``trials`` (the study's, as read at the start of this trial): a study
    resumed with early stopping off trains what an earlier run stopped.

    Candidates, not parameters, are compared: different parameters can make the same candidate
    (``global_offset`` offsets clamped at a layer's bound).
    """
    stopped = None   # one stopped early or screened out: its stop holds (the front only grows)
    for other in trials:
        if other.state in (TrialState.COMPLETE, TrialState.PRUNED) \
                and other.user_attrs.get(key) == candidate \
                and "duplicate_of" not in other.user_attrs:
            if other.state == TrialState.COMPLETE:
                return other
            stopped = stopped or (other if stopped_too else None)
    return stopped


def reuse(trial: optuna.Trial, twin: FrozenTrial) -> list[float]:
    """Record ``twin``'s result as this trial's (``duplicate_of``; nothing trained); a twin
    stopped early stops this trial with its reason."""
    for key, value in twin.user_attrs.items():
        if key not in ("candidate", "origin", "finetune_epochs_done", "retry_of", "eval_seconds",
                       CHANNEL_KEY, REFINED_KEY) + PROCESS_ATTRS:
            trial.set_user_attr(key, value)
    trial.set_user_attr("duplicate_of", twin.number)
    trial.set_user_attr("finetune_epochs_done", 0)
    if twin.state == TrialState.PRUNED:
        reason = f"as trial {twin.number}: {twin.user_attrs.get('pruned_reason', 'stopped')}"
        trial.set_user_attr("pruned_reason", reason)
        raise optuna.TrialPruned(reason)
    return list(twin.values)


CHANNEL_KEY = "channel_key"


def built_channel_key(flat: dict, weight_masks: Mapping[str, torch.Tensor]) -> str:
    """What a one-shot channel candidate builds: its settings but the per-layer sparsities, and
    the output channels each module loses (two sparsities that round to the same channels, or a
    request a coupled group ignores, build the same model)."""
    removed = {name: (~mask.reshape(mask.shape[0], -1).any(dim=1)).nonzero().flatten().tolist()
               for name, mask in sorted(weight_masks.items())}
    settings = {k: v for k, v in sorted(flat.items()) if not k.startswith(SPARSITY_PREFIX)}
    text = json.dumps([settings, removed], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]
