"""Shared test helpers: a tiny, fast config on synthetic data."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def tiny_config_dict(tmp_path: Path, **search: object) -> dict:
    """A study on synthetic 8x8 data that trains in about a second per trial."""
    return {
        "study": "tiny",
        "output_dir": str(tmp_path / "runs"),
        "threads": 1,
        "data": {"name": "synthetic", "options": {"samples": 240, "classes": 4}},
        "model": {"name": "cnn", "options": {"width": 4}},
        "dense": {"epochs": 3, "lr": 0.005},
        "finetune": {"epochs": 1, "lr": 0.002},
        # two baseline rules, so 4 trials still leave the sampler one (the default adds ERK)
        "search": {"n_trials": 4, "baseline_sparsities": [0.5], "baseline_bits": [8],
                   "baselines": ["uniform", "global_magnitude"], **search},
    }


def tiny_eval_context(factory, samples: int = 96, **extra):
    """An ``EvalContext`` for schedule tests: synthetic 8x8 data (4 classes), ``factory``'s
    model trained one epoch as the dense reference, short fine-tuning and pruning settings."""
    import torch

    from trainers.costs import load_profile
    from trainers.data import DataSettings, load_data
    from trainers.discovery import discover_layers
    from trainers.eval_context import EvalContext
    from trainers.pruning import PruningSettings
    from trainers.reference import count_other_params
    from trainers.train_settings import TrainSettings
    from trainers.training import train_epochs

    torch.manual_seed(0)
    data = load_data(DataSettings(name="synthetic", options={"samples": samples, "classes": 4}))
    dense = factory()
    train_epochs(dense, data.train, TrainSettings(epochs=1, lr=0.01), batch_size=32,
                 device=torch.device("cpu"), seed=0)
    layers = discover_layers(dense, tuple(data.input_shape))
    return EvalContext(
        model_factory=factory, data=data, dense_state=dense.state_dict(), layers=layers,
        finetune=TrainSettings(epochs=1, lr=0.005), batch_size=32, device=torch.device("cpu"),
        profile=load_profile(), other_params=count_other_params(dense, {l.name for l in layers}),
        pruning=PruningSettings(score_batches=1, during_epochs=2, prune_at=0.5),
        dense_train=TrainSettings(epochs=2, lr=0.01), **extra)


SQLITE_SIDE_FILES = ("-wal", "-shm")   # SQLite's log and index beside a WAL-mode database


def folder_contents(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` by its bytes, a SQLite database by its rows (its dump, which
    reads the write-ahead log too): "unchanged" means the same studies, not the same pages,
    and SQLite's side files change when a process only reads."""
    import sqlite3

    contents = {}
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.name.endswith(SQLITE_SIDE_FILES):
            continue
        if path.suffix == ".db":
            with sqlite3.connect(path) as db:
                contents[str(path.relative_to(folder))] = "\n".join(db.iterdump()).encode()
        else:
            contents[str(path.relative_to(folder))] = path.read_bytes()
    return contents


def cli_env() -> dict:
    """Environment for running ``python -m search`` from the repo without an install."""
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT)}


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "search", *args]


@pytest.fixture
def tiny_config(tmp_path):
    from search.config import config_from_dict

    return config_from_dict(tiny_config_dict(tmp_path))


# --- A tiny finished study, made once per test session and shared by the read-only command tests
# (status, pareto, pick, export, report, dashboard). Tests must not add trials to it; copy the
# folder first (``shutil.copytree``) for anything that writes into it.
FINISHED_STUDY = {
    "study": "finished",
    "threads": 1,
    "data": {"name": "synthetic", "options": {"samples": 400, "classes": 4}},
    "model": {"name": "cnn", "options": {"width": 4}},
    "dense": {"epochs": 4, "lr": 0.005},
    "finetune": {"epochs": 1, "lr": 0.002},
    "space": {"bits": [4, 8, 32]},
    "cost": {"measure_latency": False},
    "search": {"n_trials": 7, "baseline_sparsities": [0.5, 0.9], "baseline_bits": [8],
               "baselines": ["uniform"], "population_size": 4},
}


@pytest.fixture(scope="session")
def finished_study(tmp_path_factory):
    """``StudyResult`` of a 7-trial study on synthetic data: trial 0 dense, 1 and 2 the uniform
    50% and 90% sweeps at 8 bits, 3-6 drawn by NSGA-II.

    Its folder is ``result.folder`` (``<tmp>/runs/finished``), with ``config.yaml``, ``dense.pt``,
    ``study.db``, ``trials.csv`` and ``pareto.csv``.
    """
    from search.api import run_search
    from search.config import config_from_dict

    root: Path = tmp_path_factory.mktemp("finished")
    config = config_from_dict({**FINISHED_STUDY, "output_dir": str(root / "runs")})
    return run_search(config, log=lambda line: None)


@pytest.fixture
def study_cli(finished_study, capsys):
    """Run ``sparsity-search <command> --output-dir <tmp>/runs --study finished <args>`` in this
    process (``search.cli.main``; a subprocess would pay torch's import each time).
    Returns ``(exit code, stdout, stderr)``."""
    from search.cli.main import main

    where = ["--output-dir", finished_study.config.output_dir,
             "--study", finished_study.config.study]

    def run(command: str, *args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main([command, *where, *args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def load_benchmark(script: str):
    """Import ``benchmarks/<script>`` as a module (its ``main(argv)`` is then called in-process)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(script.removesuffix(".py"),
                                                  REPO_ROOT / "benchmarks" / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- Ray: every Ray process started by this test session lives under one temp folder, and none
# may survive the session (checked, and stopped by pid if one does; see tests/ray_processes.py).
RAY_TMPDIR = f"/tmp/ss-ray-{os.getpid()}"  # short: Ray's socket paths must stay < 108 chars


def pytest_configure(config):
    os.environ["RAY_TMPDIR"] = RAY_TMPDIR
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def pytest_sessionfinish(session, exitstatus):
    import shutil

    from ray_processes import stop_ray_processes

    if "ray" in sys.modules and sys.modules["ray"].is_initialized():
        sys.modules["ray"].shutdown()
    leftover = stop_ray_processes(RAY_TMPDIR)
    shutil.rmtree(RAY_TMPDIR, ignore_errors=True)
    if leftover:
        print(f"\nERROR: Ray processes survived the tests and were stopped: {leftover}")
        session.exitstatus = 1


# --- PostgreSQL: one throwaway server per test session (started on first use), a fresh database
# per test (see tests/postgres_server.py). Skipped with the reason only if no server can be had.
@pytest.fixture(scope="session")
def postgres_server():
    from postgres_server import PostgresServer, why_unavailable

    reason = why_unavailable()
    if reason:
        pytest.skip(reason)
    server = PostgresServer()
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server, request):
    """``postgresql+psycopg://...`` URL of a new, empty database on the session's server."""
    import re

    name = "t_" + re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:50]
    return postgres_server.create_database(name)
