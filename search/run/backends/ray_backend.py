"""The ``ray`` backend: the same study run through Ray Tune, on a local runtime or a cluster.

Ray Tune's ``OptunaSearch`` asks the study (in its own Optuna storage: the single source of truth)
for trials with the study's sampler and the define-by-run ``SearchSpace.suggest``; each Ray trial
rebuilds that Optuna trial from the storage and runs the same objective as the local workers,
which records every metric as user attributes; ``OptunaSearch`` then tells the objective values.
The caller's evaluation context (data, dense reference, measured caches) and space travel to
the trials through Ray's object store, once per worker process, which then runs trial after
trial (actors are reused): other nodes need no copy of the study folder, only the storage (an RDB
URL, or a journal / SQLite file on a shared file system).

Resume: rerunning the command reads the storage, not ``Tuner.restore`` (see the README): the
remaining budget is ``n_trials`` minus the finished trials, whoever ran them. What runs inside one
Ray trial (and what a lost node leaves behind) is ``search.run.backends.ray_trial``.
"""
from __future__ import annotations

import logging
import os
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.objectives import short_direction
from search.run.backends.base import Backend, ContextInputs, MissingExtra

try:
    import ray
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch
except ImportError as exc:  # the optional extra is missing (or broken)
    raise MissingExtra(f"the Ray backend needs Ray Tune, which cannot be imported here ({exc}); "
                       f"install it with: pip install 'sparsity-search[ray]'") from exc

from search.config import ExperimentConfig
from search.run.backends.ray_trial import (DRIVER_ATTR, TRIAL_NUMBER_KEY, RayTrialJob,
                                           run_ray_trial)
from search.run.budget import FINISHED_STATES, epochs_spent, process_token
from search.run.progress import FrontSize, PeriodicTables, StudyStopped, progress_line
from search.run.reliability import INTERRUPTED
from search.run.samplers import make_sampler
from search.run.starting import enqueue_starting_points
from search.run.storage import absolute_url, open_storage, storage_url
from search.run.study import count_finished
from search.run.trial_writes import BufferedWrites
from spaces.space import SearchSpace
from trainers.eval_context import EvalContext

class DefineByRun:
    """``OptunaSearch``'s space: ``SearchSpace.suggest`` on the asked trial (a picklable class,
    since Tune checkpoints its searcher). Returns the Optuna trial number so the Ray trial can find
    its Optuna trial in the storage."""

    def __init__(self, space: SearchSpace, driver: str):
        self.space = space
        self.driver = driver

    def __call__(self, trial: Any) -> dict[str, int]:
        with BufferedWrites(trial):   # one storage transaction for the whole candidate
            self.space.suggest(trial)
            trial.set_user_attr(DRIVER_ATTR, self.driver)
        return {TRIAL_NUMBER_KEY: trial.number}


class StudySearch(OptunaSearch):
    """``OptunaSearch`` that leaves alone the trials a Ray trial already ended in the storage
    (stopped early, invalid): telling them again would fail and log a warning per trial."""

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        asked = self._ot_trials.get(trial_id)
        if asked is not None and trial_id not in self._completed_trials:
            stored = self._ot_study._storage.get_trial(asked._trial_id)  # noqa: SLF001
            if stored.state.is_finished():
                self._completed_trials.add(trial_id)
                return
        super().on_trial_complete(trial_id, result=result, error=error)


class ProgressLog(tune.Callback):
    """One line per finished Ray trial, in the same words as the local workers'."""

    def __init__(self, study: optuna.Study, config: ExperimentConfig, log: Callable[[str], None]):
        self.study = study
        self.budget = config.search.n_trials
        self.epoch_budget = config.search.budget_epochs
        self.log = log
        self.started = time.perf_counter()
        self.study_id = study._storage.get_study_id_from_name(config.study)  # noqa: SLF001
        self.done = count_finished(study)   # this driver sees every trial end, in order
        self.tables = PeriodicTables(config)
        self.front = FrontSize(config.search.objectives.directions)   # as local workers count

    def __getstate__(self) -> dict:
        # The Tuner pickles its run config for Tuner.restore, which we do not use (see the README):
        # leave out what cannot or need not be pickled (the log function, the open study).
        return {**self.__dict__, "log": None, "study": None}

    def _stored(self, trial: Any) -> tuple[int, FrozenTrial | None]:
        number = int(trial.config.get(TRIAL_NUMBER_KEY, -1))
        storage = self.study._storage  # noqa: SLF001
        try:
            return number, storage.get_trial(
                storage.get_trial_id_from_study_id_trial_number(self.study_id, number))
        except KeyError:
            return number, None

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        # Ray calls this after the searcher told the storage: the stored state is final.
        number, stored = self._stored(trial)
        if stored is not None:
            self.done += stored.state in FINISHED_STATES
            trials = self.study.get_trials(deepcopy=False)
            epochs = None if self.epoch_budget is None else \
                f"{epochs_spent(trials)}/{self.epoch_budget}"
            self.log(progress_line(self.study, stored, self.done, self.budget, self.started,
                                   self.front.size(trials), epochs))
        self.tables(self.study)   # as local runs do

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        # A Ray trial whose worker or node was lost runs again on the same Optuna trial.
        number, _ = self._stored(trial)
        self.log(f"trial {number} lost its Ray worker or node; Ray runs it again (attempt "
                 f"{getattr(trial, 'num_failures', 0) + 1}, ray.max_failures)")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        number, stored = self._stored(trial)
        reason = stored.user_attrs.get("fail_reason", "unknown") if stored else "unknown"
        self.log(f"trial {number} FAILED after retries: {reason}")


def round_size(study: optuna.Study, config: ExperimentConfig) -> int:
    """Trials the next Ray round may run: what is left of ``n_trials``, and with an epoch budget
    no more than could each train a full fine-tune within what is left of it (Ray's trials do
    not claim budget themselves; the driver sizes the round)."""
    left = config.search.n_trials - count_finished(study)
    if config.search.budget_epochs is not None:
        spent = epochs_spent(study.get_trials(deepcopy=False, states=FINISHED_STATES))
        left = min(left, (config.search.budget_epochs - spent) // config.reserve_epochs())
    return max(0, left)


def absolute_config(config: ExperimentConfig) -> ExperimentConfig:
    """The config with every local path absolute, as trials in other folders need it."""
    search = replace(config.search, storage=absolute_url(storage_url(config)))
    data = config.data
    if data.root:
        data = replace(data, root=str(Path(data.root).resolve()))
    return replace(config, output_dir=str(Path(config.output_dir).resolve()), search=search,
                   data=data)


def results_dir(config: ExperimentConfig) -> str:
    """Ray's results folder: ``ray.results_dir`` (URIs kept as given) or in the study folder."""
    configured = config.ray.results_dir
    if configured and "://" in configured:
        return configured
    return str(Path(configured).resolve() if configured else config.study_dir / "ray_results")


def connect(config: ExperimentConfig, log: Callable[[str], None]) -> bool:
    """Join the configured cluster or start a local runtime; True if this call started Ray. Worker
    output stays in Ray's logs: trials report through the storage and the driver's lines."""
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # the classic reporter honours verbose=0
    settings = config.ray
    if settings.address:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        log(f"connecting to the Ray cluster at {settings.address}")
        ray.init(address=settings.address, logging_level=logging.WARNING, log_to_driver=False)
    else:
        log("starting a local Ray runtime")
        # Ray's default (token authentication on) is kept; its notice about it is not actionable.
        logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(
            logging.ERROR)
        ray.init(num_cpus=settings.num_cpus, num_gpus=settings.num_gpus, include_dashboard=False,
                 logging_level=logging.WARNING, log_to_driver=False)
    return True


def fail_unfinished(study: optuna.Study, driver: str, reason: str) -> int:
    """Fail the trials this driver asked for that are still running (interrupted ``fit``)."""
    count = 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if trial.user_attrs.get(DRIVER_ATTR) == driver:
            storage = study._storage  # noqa: SLF001
            storage.set_trial_user_attr(trial._trial_id, "fail_reason", reason)
            study.tell(trial.number, state=TrialState.FAIL)
            count += 1
    return count


class RayBackend(Backend):
    """Ray Tune with ``OptunaSearch`` over the study's storage."""

    name = "ray"

    def run(self, config: ExperimentConfig, study: optuna.Study, space: SearchSpace,
            context: EvalContext, *, inputs: ContextInputs | None = None,
            log: Callable[[str], None] = print) -> None:
        config = absolute_config(config)
        budget = config.search.n_trials
        enqueue_starting_points(study, space, context, config)
        driver = process_token()
        threads = config.threads or max(1, int(config.ray.cpus_per_trial))
        started_ray = connect(config, log)
        try:
            job = RayTrialJob(config, ray.put((context.portable(), space)), config.search.storage,
                              threads)
            while (done := count_finished(study)) < budget \
                    and (more := round_size(study, config)):
                log(f"study '{config.study}': {done}/{budget} finished, running {more} "
                    f"more through Ray Tune")
                self._fit(config, study, space, job, driver, more, log)
                if count_finished(study) == done:
                    raise StudyStopped(f"a Ray round of {more} trials finished none of "
                                       f"them; see fail_reason in trials.csv")
        finally:
            # The same reason the stale-trial sweep gives (search.reliability).
            fail_unfinished(study, driver, INTERRUPTED)
            if started_ray:
                ray.shutdown()

    @staticmethod
    def _fit(config: ExperimentConfig, study: optuna.Study, space: SearchSpace, job: RayTrialJob,
             driver: str, num_samples: int, log: Callable[[str], None]) -> None:
        settings = config.ray
        objectives = config.search.objectives
        searcher = StudySearch(
            space=DefineByRun(space, driver), metric=objectives.metrics,
            mode=[short_direction(d) for d in objectives.directions],
            # A fresh seed per round and per resume, so no round re-draws an earlier one's points.
            sampler=make_sampler(config, worker_index=len(study.trials)),
            # With the sweeping storage, trials record this driver as their owner: a sweep by any
            # other process leaves them alone while the driver lives.
            study_name=config.study, storage=open_storage(job.storage_url))
        trainable = tune.with_resources(
            tune.with_parameters(run_ray_trial, job=job),
            {"cpu": settings.cpus_per_trial, "gpu": settings.gpus_per_trial})
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(search_alg=searcher, num_samples=num_samples,
                                        max_concurrent_trials=settings.max_concurrent or None,
                                        reuse_actors=True),
            run_config=tune.RunConfig(
                name=f"{config.study}-{time.strftime('%Y%m%d-%H%M%S')}-{len(study.trials)}",
                storage_path=results_dir(config), verbose=0,
                failure_config=tune.FailureConfig(max_failures=settings.max_failures),
                callbacks=[ProgressLog(study, config, log)]))
        with warnings.catch_warnings():
            # The driver's storage sweeps stale trials (its heartbeat thread is Optuna's
            # ``optimize``-only feature; the driver owns its trials): nothing to act on.
            warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
            tuner.fit()


__all__ = ["DRIVER_ATTR", "RayBackend"]
