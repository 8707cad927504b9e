"""The ``optuna`` backend: N worker processes on this machine, one Optuna study in one storage.

This process is worker 0: it runs trials at once, with the context it already holds. With
``parallel.workers: N`` > 1, workers 1..N-1 are fresh ``spawn``-ed processes (forking a process
that has run torch can deadlock its thread pools) that load the dense reference trained by the
caller, open the study with their own sampler seeds and run trials until the shared budget is
reached (``search.run.budget`` keeps the total exact); their start-up (spawn, imports, context)
overlaps this process's first trials. Each worker uses ``threads`` torch threads, by default
cores / workers, so the workers do not fight over the cores.
"""
from __future__ import annotations

import multiprocessing
import pickle
import signal
from multiprocessing.process import BaseProcess
from typing import Callable, Iterable

import optuna
import torch

from search.config import ExperimentConfig
from search.run.backends.base import Backend, ContextInputs
from search.run.context import context_basis, set_threads
from search.run.progress import StudyStopped
from search.run.starting import enqueue_starting_points
from search.run.study import count_finished
from search.run.trials import run_trials
from search.run.worker import spawned_worker_main
from search.schema import ConfigError
from spaces.space import SearchSpace
from trainers.costs import CostBasis
from trainers.eval_context import EvalContext


class LocalBackend(Backend):
    """Optuna workers on this machine sharing the study storage."""

    name = "optuna"

    def run(self, config: ExperimentConfig, study: optuna.Study, space: SearchSpace,
            context: EvalContext, *, inputs: ContextInputs | None = None,
            log: Callable[[str], None] = print) -> None:
        workers = config.parallel.workers
        if workers == 1:
            run_trials(study, space, context, config, log=log)
            return
        if inputs is not None:
            check_picklable(inputs)
        # Enqueue before any worker starts, so they all find the queue filled.
        enqueue_starting_points(study, space, context, config)
        log(f"starting {workers - 1} worker process(es) on storage of study '{config.study}'; "
            f"this process is worker 0")
        threads = torch.get_num_threads()
        processes = start_worker_processes(config, range(1, workers), workers, inputs,
                                           context_basis(context))
        try:
            set_threads(config, workers)
            run_trials(study, space, context, config, log=lambda line: log(f"[w0] {line}"))
        except BaseException:   # Ctrl-C or an error here: do not leave workers behind
            stop_worker_processes(processes)
            raise
        finally:
            torch.set_num_threads(threads)
        try:
            join_worker_processes(processes)
        except StudyStopped as lost:
            # A killed worker's trial is swept by the others (marked interrupted, retried once):
            # when they finished the budget, the study is complete; say what happened.
            done = count_finished(study)
            if done < config.search.n_trials:
                raise
            log(f"{lost}; the other workers retried its trial and finished the budget "
                f"({done}/{config.search.n_trials})")


def check_picklable(inputs: ContextInputs) -> None:
    """Worker processes receive Python-API objects pickled: say which one cannot be."""
    for name in ("data", "model_factory", "loss_fn", "metric_fn"):
        try:
            pickle.dumps(getattr(inputs, name))
        except Exception as exc:
            raise ConfigError(
                f"parallel.workers > 1 sends the Python API's {name} to worker processes, but it "
                f"cannot be pickled ({type(exc).__name__}: {exc}); define it at module level "
                f"(not a lambda or local function), or use one worker or the ray backend") from exc


def start_worker_processes(config: ExperimentConfig, indices: Iterable[int], workers: int,
                           inputs: ContextInputs | None = None,
                           basis: CostBasis | None = None) -> list[BaseProcess]:
    """Spawn a worker process per index (its sampler-seed offset); ``basis``: this process's
    cost basis of the model, so the workers do not count its FLOPs again."""
    ctx = multiprocessing.get_context("spawn")
    processes = [ctx.Process(target=spawned_worker_main,
                             args=(config, index, workers, inputs, basis),
                             name=f"sparsity-search-worker-{index}")
                 for index in indices]
    for process in processes:
        process.start()
    return processes


def stop_worker_processes(processes: list[BaseProcess]) -> None:
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=10)


def join_worker_processes(processes: list[BaseProcess]) -> None:
    """Wait for every worker; raise if any of them failed."""
    try:
        for process in processes:
            process.join()
    except BaseException:  # Ctrl-C or an error here: do not leave workers behind
        stop_worker_processes(processes)
        raise
    failed = [(p.name, p.exitcode) for p in processes if p.exitcode != 0]
    if failed:
        raise StudyStopped("worker processes failed: " + ", ".join(
            f"{name} ({exit_reason(code)})" for name, code in failed) + "; see their output above")


def exit_reason(code: int | None) -> str:
    """``exit code 3`` or ``killed by SIGKILL`` (a negative exit code is the signal)."""
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
