"""The ``optuna`` backend: N worker processes on this machine, one Optuna study in one storage.

This process is worker 0: it runs trials at once, with the context it already holds. With
``parallel.workers: N`` > 1, workers 1..N-1 are separate processes that load the dense reference
trained by the caller, open the study with their own sampler seeds and run trials until the
shared budget is reached (``search.run.budget`` keeps the total exact). Each worker uses
``threads`` torch threads, by default cores / workers, so the workers do not fight over the cores.

Start-up: a process that trains imports torch, its compiler stack (the first optimizer imports
``torch._dynamo``), Optuna, the trial loop and the data loader: seconds. Workers are forked from a
fork server (``forkserver``; ``spawn`` where the platform has none; never a plain fork of this
process, which has run torch and can deadlock its thread pools) that ``prepare`` starts before
the caller loads the data and the dense reference, and that imports all that in the meantime,
once; a fork server already running (an earlier study in this process) is reused, so workers
see the environment variables of the process as they were when it started (the working
directory and ``sys.path`` are the caller's at each start). Workers are started from a
background thread, so this process trains while the server finishes its imports.
"""
from __future__ import annotations

import multiprocessing
import pickle
import signal
import threading
from multiprocessing.process import BaseProcess
from typing import Callable, Iterable

import optuna
import torch

from search.config import ExperimentConfig
from search.run.backends.base import Backend, ContextInputs
from search.run.backends.fork_server import WORKER_START_METHOD, start_fork_server
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

    def prepare(self, config: ExperimentConfig) -> None:
        if config.parallel.workers > 1:
            refuse_while_importing_main()
        start_fork_server(config)

    def run(self, config: ExperimentConfig, study: optuna.Study, space: SearchSpace,
            context: EvalContext, *, inputs: ContextInputs | None = None,
            log: Callable[[str], None] = print) -> None:
        workers = config.parallel.workers
        if workers == 1:
            run_trials(study, space, context, config, log=log)
            return
        # (``run_search`` checked that ``inputs`` pickle, before the dense reference trained)
        # Enqueue before any worker starts, so they all find the queue filled.
        enqueue_starting_points(study, space, context, config)
        log(f"starting {workers - 1} worker process(es) on storage of study '{config.study}'; "
            f"this process is worker 0")
        threads = torch.get_num_threads()
        processes = WorkerProcesses(config, range(1, workers), workers, inputs,
                                    context_basis(context))
        try:
            set_threads(config, workers)
            run_trials(study, space, context, config, log=lambda line: log(f"[w0] {line}"))
        except BaseException:   # Ctrl-C or an error here: do not leave workers behind
            processes.stop()
            raise
        finally:
            torch.set_num_threads(threads)
        try:
            processes.join()
        except StudyStopped as lost:
            # A killed worker's trial is swept by the others (marked interrupted, retried once):
            # when they finished the budget, the study is complete; say what happened.
            done = count_finished(study)
            if done < config.search.n_trials:
                raise
            log(f"{lost}; the other workers retried its trial and finished the budget "
                f"({done}/{config.search.n_trials})")


def refuse_while_importing_main() -> None:
    """A worker process (or the fork server) imports the caller's main module: a script that
    runs a study at import, outside ``if __name__ == "__main__":``, would run it there again.
    Stop it with the reason, as ``multiprocessing`` itself does."""
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise RuntimeError(
            "parallel.workers > 1: a worker process imported the main module, and the module "
            "started a study while being imported; put the code that runs the study under "
            "`if __name__ == \"__main__\":` (worker processes import the main module)")


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


class WorkerProcesses:
    """Worker processes 1..N-1, started from a background thread: a start waits until the fork
    server has done its imports, and this process runs trials meanwhile. ``basis``: this
    process's cost basis of the model, so the workers do not count its FLOPs again."""

    def __init__(self, config: ExperimentConfig, indices: Iterable[int], workers: int,
                 inputs: ContextInputs | None = None, basis: CostBasis | None = None):
        ctx = multiprocessing.get_context(WORKER_START_METHOD)
        self.processes: list[BaseProcess] = [
            # The Python API's objects travel pickled by us, so the worker unpickles them in its
            # own code and can say why it cannot (a factory defined under `if __name__ ...`).
            ctx.Process(target=spawned_worker_main,
                        args=(config, index, workers,
                              None if inputs is None else pickle.dumps(inputs), basis),
                        name=f"sparsity-search-worker-{index}")
            for index in indices]
        self.error: BaseException | None = None
        self._cancelled = False
        self._starter = threading.Thread(target=self._start, daemon=True,
                                         name="sparsity-search-worker-starter")
        self._starter.start()

    def _start(self) -> None:
        try:
            for process in self.processes:
                if self._cancelled:
                    return
                process.start()
        except BaseException as exc:   # reported by join(), in this process's thread
            self.error = exc

    def started(self) -> list[BaseProcess]:
        """The processes that were started, once the starting thread is done."""
        self._starter.join()
        return [p for p in self.processes if p.pid is not None]

    def stop(self) -> None:
        """Terminate every started worker (Ctrl-C or an error in this process)."""
        self._cancelled = True
        started = self.started()
        for process in started:
            if process.is_alive():
                process.terminate()
        for process in started:
            process.join(timeout=10)

    def join(self) -> None:
        """Wait for every worker; raise if one could not start or failed."""
        try:
            started = self.started()
            for process in started:
                process.join()
        except BaseException:  # Ctrl-C or an error here: do not leave workers behind
            self.stop()
            raise
        if self.error is not None:
            raise StudyStopped(f"a worker process could not start "
                               f"({type(self.error).__name__}: {self.error})") from self.error
        failed = [(p.name, p.exitcode) for p in started if p.exitcode != 0]
        if failed:
            raise StudyStopped("worker processes failed: " + ", ".join(
                f"{name} ({exit_reason(code)})" for name, code in failed)
                + "; see their output above")


def exit_reason(code: int | None) -> str:
    """``exit code 3`` or ``killed by SIGKILL`` (a negative exit code is the signal)."""
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
