"""Optuna studies: open (or resume) a study, run the trial budget, record every metric."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.config import ExperimentConfig, dump_config
from search.schema import ConfigError
from search.storage import open_storage
from spaces.candidate import Candidate
from spaces.space import SearchSpace
from trainers.checkpoint import atomic_write_text
from trainers.context import EvalContext
from search.early_stopping import FrontRungCheck
from trainers.evaluate import cost_metrics, evaluate
from trainers.method import finetune_settings
from trainers.rungs import StopCandidate
from trainers.pruning.global_threshold import global_magnitude_sparsity

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def storage_url(config: ExperimentConfig) -> str:
    if config.search.storage:
        return config.search.storage
    return f"sqlite:///{(config.study_dir / 'study.db').resolve()}"


def make_sampler(config: ExperimentConfig) -> optuna.samplers.BaseSampler:
    seed = config.seed
    constraints = constraint_values(config.search.constraints) if config.search.constraints else None
    if config.search.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True,
                                          constraints_func=constraints)
    if config.search.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.NSGAIISampler(seed=seed, population_size=config.search.population_size,
                                         constraints_func=constraints)


def open_study(config: ExperimentConfig, space: SearchSpace) -> optuna.Study:
    """Create the study or load it; refuse to resume with another space or other objectives."""
    try:
        study = optuna.create_study(
            study_name=config.study, storage=open_storage(storage_url(config)), load_if_exists=True,
            directions=config.search.objectives.directions, sampler=make_sampler(config))
    except ValueError as exc:
        raise ConfigError(f"study '{config.study}' exists with other objective directions "
                          f"({exc}); use a new study name") from exc
    signature = json.loads(json.dumps(space.signature()))
    objectives = config.search.objectives.to_config_value()
    stored_sig = study.user_attrs.get("space_signature")
    stored_obj = study.user_attrs.get("objectives")
    if stored_sig is None:
        study.set_user_attr("space_signature", signature)
        study.set_user_attr("objectives", objectives)
        study.set_user_attr("n_trials", config.search.n_trials)
    else:
        if stored_obj != objectives:
            raise ConfigError(f"study '{config.study}' was created with objectives {stored_obj}, "
                              f"this config has {objectives}; use a new study name")
        if stored_sig != signature:
            raise ConfigError(f"study '{config.study}' was created with a different search space "
                              f"({describe_difference(stored_sig, signature)}); "
                              f"use a new study name")
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


def make_objective(space: SearchSpace, context: EvalContext, config: ExperimentConfig
                   ) -> Callable[[optuna.Trial], list[float]]:
    metrics = config.search.objectives.metrics

    def objective(trial: optuna.Trial) -> list[float]:
        candidate = space.suggest(trial)
        trial.set_user_attr("candidate", candidate.to_flat_dict())
        if "origin" not in trial.user_attrs:
            trial.set_user_attr("origin", "sampler")
        twin = find_duplicate(trial.study, trial.params)
        if twin is not None:   # never pay twice: reuse the stored result
            for key, value in twin.user_attrs.items():
                if key not in ("candidate", "origin", "finetune_epochs_done"):
                    trial.set_user_attr(key, value)
            trial.set_user_attr("duplicate_of", twin.number)
            trial.set_user_attr("finetune_epochs_done", 0)
            return list(twin.values)
        check = None
        if config.search.early_stopping.enabled:
            check = FrontRungCheck(trial.study, metrics, config.search.objectives.directions,
                                   cost_metrics(candidate, context), config.search.early_stopping)
        try:
            result = evaluate(candidate, context, check)
        except StopCandidate as stop:
            trial.set_user_attr("pruned_rung", stop.epoch)
            trial.set_user_attr("pruned_reason", stop.reason)
            trial.set_user_attr("rung_accuracy", stop.accuracy)
            trial.set_user_attr("finetune_epochs_done", stop.epoch)
            for key, value in check.costs.items():
                trial.set_user_attr(key, float(value))
            raise optuna.TrialPruned(stop.reason) from None
        except Exception as exc:
            trial.set_user_attr("fail_reason", f"{type(exc).__name__}: {exc}"[:500])
            raise
        for key, value in result.metrics.items():
            trial.set_user_attr(key, float(value))
        for key, value in result.info.items():
            trial.set_user_attr(key, value)
        trial.set_user_attr("finetune_epochs_done", finetune_epochs(candidate, context))
        return [float(result.metrics[m]) for m in metrics]

    return objective


def finetune_epochs(candidate: Candidate, context: EvalContext) -> int:
    """Fine-tune epochs a completed candidate trained (the unit of the search's training cost)."""
    return int(finetune_settings(candidate, context).epochs)


class StudyStopped(RuntimeError):
    """The study stopped before its budget (too many consecutive failures)."""


class BudgetAndProgress:
    """Optuna callback: progress lines, stop at the budget, stop after N consecutive failures."""

    def __init__(self, config: ExperimentConfig, log: Callable[[str], None]):
        self.config = config
        self.log = log
        self.failures = 0
        self.started = time.perf_counter()
        self.stop_reason: str | None = None

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        budget = self.config.search.n_trials
        done = count_finished(study)
        if trial.state == TrialState.FAIL:
            self.failures += 1
            reason = trial.user_attrs.get("fail_reason", "unknown")
            self.log(f"[{done}/{budget}] trial {trial.number} FAILED: {reason}")
        elif trial.state == TrialState.PRUNED:
            self.failures = 0
            self.log(f"[{done}/{budget}] trial {trial.number} stopped early: "
                     f"{trial.user_attrs.get('pruned_reason', '')}")
        else:
            self.failures = 0
            attrs = trial.user_attrs
            front = len(study.best_trials)
            self.log(f"[{done}/{budget}] trial {trial.number}: val_acc={attrs.get('accuracy', 0):.4f}"
                     f" MFLOPs={attrs.get('flops', 0) / 1e6:.3f}"
                     f" energy_uJ(est)={attrs.get('energy_uj', 0):.3f}"
                     f" | front size {front} | {time.perf_counter() - self.started:.0f}s")
        if self.failures >= self.config.search.max_consecutive_failures:
            self.stop_reason = (f"{self.failures} consecutive trials failed; last reason: "
                                f"{trial.user_attrs.get('fail_reason', 'unknown')}")
            study.stop()
        elif done >= budget:
            study.stop()


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


def find_duplicate(study: optuna.Study, params: dict) -> optuna.trial.FrozenTrial | None:
    """A completed trial with exactly these parameters (values are on the space's grid)."""
    for other in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if other.params == params and "duplicate_of" not in other.user_attrs:
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


def run_trials(study: optuna.Study, space: SearchSpace, context: EvalContext,
               config: ExperimentConfig, log: Callable[[str], None] = print) -> None:
    """Run trials until the study holds ``n_trials`` finished ones (resume-safe)."""
    budget = config.search.n_trials
    done = count_finished(study)
    if done >= budget:
        log(f"study '{config.study}' already has {done}/{budget} finished trials")
        return
    if not study.trials:
        for origin, candidate in starting_candidates(space, context, config):
            study.enqueue_trial(space.to_params(candidate), user_attrs={"origin": origin},
                                skip_if_exists=True)
    log(f"study '{config.study}': {done}/{budget} finished, running {budget - done} more")
    callback = BudgetAndProgress(config, log)
    study.optimize(make_objective(space, context, config), n_trials=None,
                   callbacks=[callback], catch=(Exception,), gc_after_trial=False)
    if callback.stop_reason:
        raise StudyStopped(callback.stop_reason)


def save_study_config(config: ExperimentConfig) -> Path:
    path = config.study_dir / "config.yaml"
    atomic_write_text(path, dump_config(config))
    return path
