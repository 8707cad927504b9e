"""Optuna studies: open (or resume) a study, run the trial budget, record every metric."""
from __future__ import annotations

import json
import math
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.budget import (PROCESS_ATTRS, WORKER_ATTR, budget_open, claim_slot, is_surplus,
                           process_token)
from search.config import ExperimentConfig, dump_config
from search.reliability import INTERRUPTED, RetryInterruptedTrial, sweep_interrupted
from search.schema import ConfigError, to_dict
from search.storage import open_storage
from spaces.candidate import Candidate
from spaces.settings import SpaceSettings, settings_signature
from spaces.space import SearchSpace
from trainers.checkpoint import atomic_write_text
from trainers.eval_context import EvalContext
from search.early_stopping import FrontRungCheck
from trainers.trial import cost_metrics, evaluate_candidate
from trainers.method_parts import finetune_settings
from trainers.rungs import StopCandidate
from trainers.pruning.global_threshold import global_magnitude_sparsity

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def storage_url(config: ExperimentConfig) -> str:
    if config.search.storage:
        return config.search.storage
    return f"sqlite:///{(config.study_dir / 'study.db').resolve()}"


def make_sampler(config: ExperimentConfig, worker_index: int = 0) -> optuna.samplers.BaseSampler:
    # Each worker gets its own seed: equal seeds would make parallel workers draw equal candidates.
    seed = config.seed + worker_index
    constraints = constraint_values(config.search.constraints) if config.search.constraints else None
    if config.search.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True,
                                          constraints_func=constraints)
    if config.search.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.NSGAIISampler(seed=seed, population_size=config.search.population_size,
                                         constraints_func=constraints)


def study_definition(config: ExperimentConfig) -> dict:
    """What makes the trials of one study comparable: data, model, training, costs, objectives.

    Budget, sampler, storage, device and paths may change between runs; these may not.
    """
    data = {k: v for k, v in to_dict(config.data).items() if k not in ("root", "download")}
    definition = {"seed": config.seed, "data": data}
    for key in ("model", "dense", "finetune", "cost"):
        definition[key] = to_dict(getattr(config, key))
    definition["objectives"] = config.search.objectives.to_config_value()
    return json.loads(json.dumps(definition))


def free_study_name(config: ExperimentConfig) -> str:
    """A study name not used in the output folder (offered when a resume is refused)."""
    for i in range(2, 1000):
        name = f"{config.study}-{i}"
        if not (Path(config.output_dir) / name).exists():
            return name
    return f"{config.study}-new"


def _refuse(config: ExperimentConfig, what: str, difference: str) -> ConfigError:
    return ConfigError(
        f"study '{config.study}' exists with {what} ({difference}); resume it with "
        f"its original config ({config.study_dir / 'config.yaml'}) or use a new study name, "
        f"e.g. --study {free_study_name(config)}")


def check_resumable(config: ExperimentConfig) -> bool:
    """Refuse early (before any training or write) to resume a study defined differently.

    Returns True when the study already exists. Also fails early on a storage that can't be opened.
    """
    storage = open_storage(storage_url(config), heartbeat=False)
    try:
        study_id = storage.get_study_id_from_name(config.study)
    except KeyError:
        return False
    attrs = storage.get_study_user_attrs(study_id)
    objectives = config.search.objectives.to_config_value()
    stored_obj = attrs.get("objectives")
    if stored_obj is not None and stored_obj != objectives:
        raise _refuse(config, "different objectives",
                      f"stored {_yaml_map(stored_obj)}, this config {_yaml_map(objectives)}")
    stored_def = attrs.get("definition")
    definition = without_new_defaults(study_definition(config), stored_def,
                                      study_definition(ExperimentConfig()))
    if stored_def is not None and stored_def != definition:
        raise _refuse(config, "a different setup",
                      describe_difference(stored_def, definition, "config"))
    return True


def comparable_signature(space: SearchSpace, stored: dict | None) -> dict:
    """``space``'s signature (as stored) to compare with a study's ``stored`` one (see
    ``without_new_defaults``: space options added later, left at their defaults, are left out)."""
    signature = json.loads(json.dumps(space.signature()))
    defaults = {"settings": json.loads(json.dumps(settings_signature(SpaceSettings())))}
    return without_new_defaults(signature, stored, defaults)


_ABSENT = object()


def without_new_defaults(now: Any, stored: Any, defaults: Any) -> Any:
    """``now`` without the keys ``stored`` lacks whose value in ``now`` is their value in
    ``defaults`` (same nesting): a setting added by a later version of the tool, left at its
    default, must not make older studies impossible to resume; set to anything else, it is a
    real difference and stays."""
    if not isinstance(now, dict) or not isinstance(stored, dict):
        return now
    defaults = defaults if isinstance(defaults, dict) else {}
    return {key: without_new_defaults(value, stored[key], defaults.get(key)) if key in stored
            else value for key, value in now.items()
            if key in stored or value != defaults.get(key, _ABSENT)}


def _yaml_map(mapping: dict) -> str:
    return "{" + ", ".join(f"{k}: {v}" for k, v in mapping.items()) + "}"


def open_study(config: ExperimentConfig, space: SearchSpace, worker_index: int = 0) -> optuna.Study:
    """Create the study or load it; refuse to resume with another space or other objectives."""
    check_resumable(config)
    try:
        study = optuna.create_study(
            study_name=config.study, storage=open_storage(storage_url(config)), load_if_exists=True,
            directions=config.search.objectives.directions,
            sampler=make_sampler(config, worker_index))
    except ValueError as exc:
        raise _refuse(config, "different objective directions",
                      f"this config: {config.search.objectives.to_config_value()}") from exc
    stored_sig = study.user_attrs.get("space_signature")
    signature = comparable_signature(space, stored_sig)
    if stored_sig is None:
        study.set_user_attr("objectives", config.search.objectives.to_config_value())
        study.set_user_attr("definition", study_definition(config))
        study.set_user_attr("n_trials", config.search.n_trials)
        study.set_user_attr("space_signature", signature)    # last: marks the others as set
    elif stored_sig != signature:
        raise _refuse(config, "a different search space",
                      describe_difference(stored_sig, signature))
    return study


def describe_difference(old: dict, new: dict, path: str = "space") -> str:
    """The first differing key between two nested dicts, as 'path: old -> new'."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            if old.get(key) != new.get(key):
                return describe_difference(old.get(key), new.get(key), f"{path}.{key}")
    return f"{path}: stored {old!r}, now {new!r}"


def count_finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


class InvalidCandidate(RuntimeError):
    """The candidate was rejected before training (e.g. it cuts a model output off)."""


def make_objective(space: SearchSpace, context: EvalContext, config: ExperimentConfig, *,
                   guard_budget: bool = True) -> Callable[[optuna.Trial], list[float]]:
    """The trial function of every backend. ``guard_budget``: claim a budget slot first (for
    workers that share a study; Ray's ``num_samples`` already bounds its own trials)."""
    metrics = config.search.objectives.metrics

    def objective(trial: optuna.Trial) -> list[float]:
        trial.set_user_attr(WORKER_ATTR, process_token())
        if guard_budget:
            claim_slot(trial, config.search.n_trials)
        candidate = space.suggest(trial)
        flat = json.loads(json.dumps(candidate.to_flat_dict()))   # as the storage returns it
        trial.set_user_attr("candidate", flat)
        if "origin" not in trial.user_attrs:
            trial.set_user_attr("origin", "sampler")
        twin = find_duplicate(trial.study, flat)
        if twin is not None:   # never pay twice: reuse the stored result
            for key, value in twin.user_attrs.items():
                if key not in ("candidate", "origin", "finetune_epochs_done", "retry_of",
                               "eval_seconds") + PROCESS_ATTRS:
                    trial.set_user_attr(key, value)
            trial.set_user_attr("duplicate_of", twin.number)
            trial.set_user_attr("finetune_epochs_done", 0)
            return list(twin.values)
        check = None
        if config.search.early_stopping.active(metrics):
            check = FrontRungCheck(trial.study, metrics, config.search.objectives.directions,
                                   cost_metrics(candidate, context), config.search.early_stopping,
                                   trial=trial)
        started = time.perf_counter()
        try:
            result = evaluate_candidate(candidate, context, check)
        except StopCandidate as stop:
            trial.set_user_attr("pruned_rung", stop.epoch)
            trial.set_user_attr("pruned_reason", stop.reason)
            trial.set_user_attr("finetune_epochs_done", stop.epoch)
            for key, value in check.costs.items():
                trial.set_user_attr(key, float(value))
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
            return objective(trial)
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
    """Fine-tune epochs a completed candidate trained (the unit of the search's training cost)."""
    return int(finetune_settings(candidate, context).epochs)


class StudyStopped(RuntimeError):
    """The study stopped before its budget (too many consecutive failures)."""


class BudgetAndProgress:
    """Optuna callback: progress lines, stop at the budget, stop after N consecutive failures.

    Invalid candidates (rejected before training) cost nothing: they neither count towards the
    budget nor as failures, but 10 x ``max_consecutive_failures`` of them in a row stop the study
    too (the space then yields almost nothing trainable).
    """

    def __init__(self, config: ExperimentConfig, log: Callable[[str], None]):
        self.config = config
        self.log = log
        self.failures = 0
        self.invalid = 0
        self.reasons: Counter[str] = Counter()
        self.started = time.perf_counter()
        self.stop_reason: str | None = None

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        budget = self.config.search.n_trials
        limit = self.config.search.max_consecutive_failures
        done = count_finished(study)
        reason = str(trial.user_attrs.get("fail_reason", "unknown"))
        if is_surplus(trial):
            if not budget_open(study, budget):  # others hold the rest of the budget: stop here
                study.stop()
            return
        if trial.state == TrialState.FAIL and trial.user_attrs.get("invalid"):
            self.invalid += 1
            self.log(f"[{done}/{budget}] trial {trial.number} INVALID (not trained): {reason}")
        elif trial.state == TrialState.FAIL:
            self.failures += 1
            self.invalid = 0
            self.reasons[reason.split(":")[0]] += 1
            self.log(f"[{done}/{budget}] trial {trial.number} FAILED: {reason}")
        elif trial.state == TrialState.PRUNED:
            self.failures = 0
            self.invalid = 0
            self.log(f"[{done}/{budget}] trial {trial.number} stopped early: "
                     f"{trial.user_attrs.get('pruned_reason', '')}")
        else:
            self.failures = 0
            self.invalid = 0
            front = len(study.best_trials)
            self.log(f"[{done}/{budget}] trial {trial.number}: "
                     f"{trial_figures(trial.user_attrs, study.user_attrs.get('metric'))}"
                     f" | front size {front} | {time.perf_counter() - self.started:.0f}s")
        if self.failures >= limit:
            self.stop_reason = (f"{self.failures} consecutive trials failed "
                                f"(search.max_consecutive_failures: {limit}); last reason: {reason}")
        elif self.invalid >= 10 * limit:
            self.stop_reason = (f"{self.invalid} consecutive candidates were invalid "
                                f"(10 x search.max_consecutive_failures); last: {reason}")
        if self.stop_reason:
            study.stop()
        elif done >= budget or not budget_open(study, budget):
            study.stop()

    def summary(self, study: optuna.Study) -> str:
        """One line: why the study stopped, how far it got, failures by kind."""
        done = count_finished(study)
        kinds = ", ".join(f"{k} x{n}" for k, n in self.reasons.most_common())
        return (f"study '{self.config.study}' stopped: {self.stop_reason}; "
                f"{done}/{self.config.search.n_trials} trials finished"
                f"{'; failures this run: ' + kinds if kinds else ''}; "
                f"fix the cause and run the same command again to resume")


def starting_candidates(space: SearchSpace, context: EvalContext, config: ExperimentConfig
                        ) -> list[tuple[str, Candidate]]:
    """(origin, candidate): the dense reference and the hand-made sweeps a user would try first
    (the same sparsity in every layer; one global magnitude threshold), at each baseline bit-width.
    Enqueued before the sampler's own trials, so the front is never worse than the by-hand result.
    """
    found: list[tuple[str, Candidate]] = []
    if config.search.enqueue_dense:
        found.append(("dense", space.dense_candidate()))
    searched = space.searched_layers()
    for bits in config.search.baseline_bits:
        for sparsity in config.search.baseline_sparsities:
            for origin in config.search.baselines:
                if origin == "uniform":
                    per_layer = {name: sparsity for name in searched}
                else:
                    per_layer = global_magnitude_sparsity(context.dense_state, searched, sparsity)
                candidate = space.candidate_for(per_layer, {n: bits for n in space.layer_names})
                if all(candidate != c for _, c in found):
                    found.append((origin, candidate))
    return found[: config.search.n_trials]


def trial_figures(attrs: dict, metric: str | None = None) -> str:
    """The figures of a finished trial in a progress line, named after the study's metric."""
    label = "val_acc" if metric in (None, "accuracy") else f"val_{metric}"
    return (f"{label}={attrs.get('accuracy', 0):.4f} MFLOPs={attrs.get('flops', 0) / 1e6:.3f}"
            f" energy_uJ(est)={attrs.get('energy_uj', 0):.3f}")


def find_duplicate(study: optuna.Study, candidate: dict) -> optuna.trial.FrozenTrial | None:
    """A completed trial of exactly this candidate (its flat dict; values are on the space's grid).

    Candidates, not parameters, are compared: different parameters can make the same candidate
    (``global_offset`` offsets clamped at a layer's bound).
    """
    for other in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if other.user_attrs.get("candidate") == candidate and "duplicate_of" not in other.user_attrs:
            return other
    return None


def constraint_values(limits: dict[str, float]) -> Callable[[FrozenTrial], list[float]]:
    """Optuna ``constraints_func``: one value per limit, <= 0 when satisfied."""
    def values(trial: FrozenTrial) -> list[float]:
        out = []
        for key, limit in limits.items():
            bound, _, metric = key.partition("_")
            value = trial.user_attrs.get(metric)
            if value is None:
                out.append(1.0)
            else:
                out.append(value - limit if bound == "max" else limit - value)
        return out
    return values


def enqueue_starting_points(study: optuna.Study, space: SearchSpace, context: EvalContext,
                            config: ExperimentConfig) -> None:
    """Enqueue the starting candidates once per study, even when a kill interrupts the loop.

    The study attr ``starting_enqueued`` is False while enqueueing and True after; a run that finds
    False enqueues again, skipping what is already there.
    """
    if study.trials and study.user_attrs.get("starting_enqueued") is not False:
        return
    study.set_user_attr("starting_enqueued", False)
    for origin, candidate in starting_candidates(space, context, config):
        study.enqueue_trial(space.to_params(candidate), user_attrs={"origin": origin},
                            skip_if_exists=True)
    study.set_user_attr("starting_enqueued", True)


def run_trials(study: optuna.Study, space: SearchSpace, context: EvalContext,
               config: ExperimentConfig, log: Callable[[str], None] = print) -> None:
    """Run trials until the study holds ``n_trials`` finished ones (resume-safe; several
    processes may run this on one study at once, see ``search.budget``)."""
    budget = config.search.n_trials
    sweep_interrupted(study, log=log)
    done = count_finished(study)
    if done >= budget:
        log(f"study '{config.study}' already has {done}/{budget} finished trials")
        return
    if not budget_open(study, budget):
        log(f"study '{config.study}': {done}/{budget} finished, the rest is running elsewhere")
        return
    enqueue_starting_points(study, space, context, config)
    log(f"study '{config.study}': {done}/{budget} finished, running up to {budget - done} more")
    stopping = config.search.early_stopping
    if stopping.active(config.search.objectives.metrics):
        log(stopping.describe())
    callback = BudgetAndProgress(config, log)
    study.optimize(make_objective(space, context, config), n_trials=None,
                   callbacks=[callback], catch=(Exception,), gc_after_trial=False)
    if callback.stop_reason:
        raise StudyStopped(callback.summary(study))


def save_study_config(config: ExperimentConfig) -> Path:
    path = config.study_dir / "config.yaml"
    atomic_write_text(path, dump_config(config))
    return path
