"""One worker: a process that joins a study in its storage and runs trials until the budget is
reached. ``sparsity-search run --workers N`` starts N of them; ``sparsity-search worker`` starts one
on any machine that reaches the storage (and the study folder, for ``dense.pt``)."""
from __future__ import annotations

import pickle
import zlib
from typing import Callable

import optuna

from search.config import ExperimentConfig
from search.run.backends.base import ContextInputs
from search.run.budget import process_token
from search.run.context import build_study_context, set_threads
from search.run.progress import StudyStopped
from search.run import stop_request
from search.run.storage import open_storage, sqlite_path, storage_url
from search.run.study import open_study, reuse_dense_latency
from search.run.trials import run_trials
from search.schema import ConfigError
from trainers.costs import CostBasis


def require_existing_study(config: ExperimentConfig) -> None:
    """Workers join studies; they never create one (``run`` does, with its dense reference)."""
    url = storage_url(config)
    if sqlite_path(url) is not None and not sqlite_path(url).is_file():
        names: list[str] = []
    else:
        names = optuna.get_all_study_names(open_storage(url, heartbeat=False))
    if config.study not in names:
        raise ConfigError(f"storage '{url}' has no study named '{config.study}'; start it with "
                          f"`sparsity-search run` (workers only join existing studies)")


def require_dense_reference(config: ExperimentConfig) -> None:
    """Workers never train the dense reference: ``run`` trains it once, before any worker."""
    path = config.study_dir / "dense.pt"
    if not path.is_file():
        raise ConfigError(f"no dense reference at '{path}': start the study with "
                          f"`sparsity-search run` first (it trains the dense model once), and give "
                          f"this worker the study folder (--output-dir on a shared file system)")


def default_worker_index() -> int:
    """A sampler-seed offset unique to this process (workers joined by hand on other machines)."""
    return 1000 + zlib.crc32(process_token().encode()) % 1_000_000


def run_worker(config: ExperimentConfig, *, worker_index: int | None = None, workers: int = 1,
               inputs: ContextInputs | None = None, basis: CostBasis | None = None,
               log: Callable[[str], None] = print) -> None:
    """Load the study's context (dense reference from the study folder, or ``inputs`` from the
    process that started this worker; ``basis``: the model's cost basis from that process) and
    run its trials."""
    # Failed trials are reported by our progress line (as run_search does): not Optuna's warning.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    require_existing_study(config)
    if inputs is None:
        require_dense_reference(config)
    threads = set_threads(config, workers)
    index = default_worker_index() if worker_index is None else worker_index
    context, space = build_study_context(config, log=log, basis=basis, keep_dense=True,
                                         **(inputs.context_kwargs() if inputs else {}))
    study = open_study(config, space, worker_index=index)
    reuse_dense_latency(study, context)   # at the reference's thread count: not timed again
    log(f"worker {index} ({process_token()}) joined study '{config.study}' with {threads} "
        f"torch thread(s)")
    run_trials(study, space, context, config, log=log)


def spawned_worker_main(config: ExperimentConfig, worker_index: int, workers: int,
                        inputs: bytes | ContextInputs | None = None,
                        basis: CostBasis | None = None) -> None:
    """Entry point of a worker process started by the local backend (forked from its fork server,
    or spawned where the platform has none). ``inputs``: pickled ``ContextInputs``, or None."""
    prefix = f"[w{worker_index}] "

    def log(message: str) -> None:
        print(prefix + message, flush=True)

    stop_request.install()   # Ctrl-C, and terminate() from the first process, end it cleanly
    if isinstance(inputs, bytes):
        try:
            inputs = pickle.loads(inputs)
        except (AttributeError, ImportError) as exc:   # a name the main module does not define
            log(f"stopped: cannot load the Python API's model, data or loss sent to it "
                f"({type(exc).__name__}: {exc}); define them at module level, not under "
                f"`if __name__ == \"__main__\":` (worker processes import the main module, they "
                f"do not run it); the other workers go on")
            raise SystemExit(3) from None
    try:
        run_worker(config, worker_index=worker_index, workers=workers, inputs=inputs,
                   basis=basis, log=log)
    except (ConfigError, StudyStopped) as exc:
        log(f"stopped: {exc}")
        raise SystemExit(3) from exc
    except KeyboardInterrupt:   # its running trial is marked interrupted and queued again
        stop_request.release_heartbeats()
        log("interrupted")
        raise SystemExit(130) from None
