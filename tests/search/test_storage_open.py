"""Opening one new SQLite storage from several processes at once (two `run`s started together)."""
from __future__ import annotations

import multiprocessing

import optuna

from search.run.storage import open_storage


def _open_and_create(url: str, barrier, index: int, errors) -> None:
    try:
        barrier.wait(timeout=60)
        storage = open_storage(url, heartbeat=index % 2 == 0)
        optuna.create_study(study_name="same", storage=storage, load_if_exists=True,
                            directions=["maximize", "minimize"])
    except Exception as exc:        # reported to the test, which shows it
        errors.put(f"{type(exc).__name__}: {exc}"[:300])


def test_processes_opening_a_new_sqlite_file_at_once_all_succeed(tmp_path):
    """Each process created Optuna's tables at once: "table ... already exists" or a UNIQUE
    failure on alembic_version, which read as a broken storage (the study was fine)."""
    ctx = multiprocessing.get_context("spawn")
    for attempt in range(3):
        url = f"sqlite:///{tmp_path / f'try{attempt}' / 'study.db'}"
        barrier, errors = ctx.Barrier(4), ctx.Queue()
        procs = [ctx.Process(target=_open_and_create, args=(url, barrier, i, errors))
                 for i in range(4)]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join(timeout=120)
        found = []
        while not errors.empty():
            found.append(errors.get())
        assert not found, found
        assert all(proc.exitcode == 0 for proc in procs)
        study = optuna.load_study(study_name="same", storage=open_storage(url, heartbeat=False))
        assert study.directions[0].name == "MAXIMIZE"
