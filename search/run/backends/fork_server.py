"""The fork server local worker processes come from (see ``search.run.backends.local``).

Importing this module loads no torch, so the command line can start the server first thing,
before it imports torch and loads the data and the dense reference itself.
"""
from __future__ import annotations

import multiprocessing

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
    forkserver.ensure_running()
