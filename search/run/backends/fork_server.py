"""The fork server local worker processes come from (see ``search.run.backends.local``).

Importing this module loads no torch, so the command line can start the server first thing,
before it imports torch and loads the data and the dense reference itself.
"""
from __future__ import annotations

import multiprocessing
import signal
import threading

from search.config import ExperimentConfig

WORKER_START_METHOD = ("forkserver" if "forkserver" in multiprocessing.get_all_start_methods()
                       else "spawn")


def start_fork_server(config: ExperimentConfig) -> None:
    """Start the fork server worker processes come from, importing what a worker needs (see
    ``search.run.backends.local``); returns at once: the imports run in the server's process.
    Nothing to do unless ``config`` runs local worker processes, where the platform has no fork
    server, or when it is running already."""
    local_workers = config.parallel.backend == "optuna" and config.parallel.workers > 1
    if not local_workers or WORKER_START_METHOD != "forkserver":
        return
    from multiprocessing import forkserver

    from trainers.data.catalog import modules_to_preload

    multiprocessing.get_context("forkserver").set_forkserver_preload(
        ["search.run.worker", "torch._dynamo", *modules_to_preload(config.data)])
    # The server ignores Ctrl-C once its imports are done, not during them (seconds of torch):
    # an early Ctrl-C printed its import traceback. Started with SIGINT ignored (kept across
    # exec), it ignores it throughout; each worker installs its own handlers.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if _main_thread() else None
    try:
        forkserver.ensure_running()
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()
