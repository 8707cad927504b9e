"""A running trial's parameters and attributes are written in one transaction, and read back the
same as one-by-one writes, on every kind of storage."""
from __future__ import annotations

import optuna
import pytest
from sqlalchemy import event

from search.run.storage import open_storage
from search.run.trial_writes import BufferedWrites

pytestmark = pytest.mark.filterwarnings("ignore:Heartbeat of storage")


def _storage(kind: str, tmp_path):
    if kind == "sqlite":
        return open_storage(f"sqlite:///{tmp_path / 'study.db'}", heartbeat=False)
    if kind == "sqlite-sweeping":
        return open_storage(f"sqlite:///{tmp_path / 'study.db'}")
    return open_storage(f"journal:///{tmp_path / 'study.log'}")


def _draw(trial: optuna.Trial) -> None:
    for i in range(5):
        trial.suggest_float(f"s{i}", 0.0, 1.0)
        trial.suggest_categorical(f"b{i}", [2, 8, 32])
    trial.set_user_attr("candidate", {"x": [1, 2]})
    trial.set_user_attr("accuracy", 0.5)
    trial.set_user_attr("accuracy", 0.75)     # the last value wins, the first position stays
    trial.set_user_attr("flops", 10.0)


@pytest.mark.parametrize("kind", ["sqlite", "sqlite-sweeping", "journal"])
def test_buffered_writes_store_what_one_by_one_writes_store(kind, tmp_path):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=_storage(kind, tmp_path), study_name="s",
                                sampler=optuna.samplers.RandomSampler(seed=0))
    plain = study.ask()
    _draw(plain)
    study.tell(plain, 1.0)
    study.sampler = optuna.samplers.RandomSampler(seed=0)
    batched = study.ask()
    writes = BufferedWrites(batched)
    _draw(batched)
    reader = optuna.load_study(study_name="s", storage=_storage(kind, tmp_path))
    assert reader.trials[1].params == {}            # nothing written yet
    assert batched.user_attrs["accuracy"] == 0.75   # the trial reads its own writes
    writes.close()
    assert batched.storage is study._storage
    study.tell(batched, 1.0)
    # A fresh reader (another process) sees the same trial both ways.
    again = optuna.load_study(study_name="s", storage=_storage(kind, tmp_path)).trials
    assert again[1].params == again[0].params
    assert again[1].distributions == again[0].distributions
    assert list(again[1].user_attrs.items()) == list(again[0].user_attrs.items())


def test_rdb_writes_are_one_commit(tmp_path):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = _storage("sqlite", tmp_path)
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    writes = BufferedWrites(trial)
    _draw(trial)
    commits = []
    event.listen(storage.engine, "commit", lambda conn: commits.append(1))
    writes.flush()                                   # 10 parameters, 3 attributes
    assert len(commits) == 1
    writes.flush()                                   # nothing pending: no transaction
    assert len(commits) == 1
    writes.close()
    trial.set_user_attr("after", 1)                  # the real storage again: written at once
    assert len(commits) == 2


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_a_trial_asked_by_another_process_is_written_in_one_go(kind, tmp_path):
    """A Ray trial writes to a trial its driver asked for, which its own storage has not read."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    driver = optuna.create_study(storage=_storage(kind, tmp_path), study_name="s")
    asked = driver.ask()
    asked.suggest_float("x", 0.0, 1.0)
    worker = optuna.load_study(study_name="s", storage=_storage(kind, tmp_path))
    trial = optuna.Trial(worker, asked._trial_id)
    with BufferedWrites(trial):
        trial.set_user_attr("node", "10.0.0.2")
        trial.set_user_attr("attempt", 2)
    stored = optuna.load_study(study_name="s", storage=_storage(kind, tmp_path)).trials[0]
    assert stored.user_attrs == {"node": "10.0.0.2", "attempt": 2}
    assert stored.params == {"x": asked.params["x"]}


def test_an_incompatible_parameter_fails_the_write(tmp_path):
    """The batched path keeps Optuna's rule: a name keeps its distribution within a study."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=_storage("sqlite", tmp_path), study_name="s")
    first = study.ask()
    first.suggest_float("x", 0.0, 1.0)
    study.tell(first, 1.0)
    trial = study.ask()
    writes = BufferedWrites(trial)
    trial.suggest_categorical("x", ["a", "b"])
    with pytest.raises(ValueError, match="Cannot set different distribution"):
        writes.close()


def test_sqlite_commits_append_to_a_write_ahead_log_and_the_file_alone_holds_the_study(tmp_path):
    """SQLite storages run in WAL mode with synchronous=NORMAL (a commit appends to the log
    instead of syncing the disk); a checkpoint leaves study.db alone complete, as a copy of it
    after a run is."""
    import shutil
    import sqlite3

    from search.run.storage import checkpoint_sqlite

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = _storage("sqlite-sweeping", tmp_path)
    with storage.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1   # NORMAL
    study = optuna.create_study(storage=storage, study_name="s")
    for value in (1.0, 2.0, 3.0):
        study.tell(study.ask(), value)
    assert (tmp_path / "study.db-wal").stat().st_size > 0    # the trials are in the log so far
    checkpoint_sqlite(study._storage)
    copy = tmp_path / "copy" / "study.db"
    copy.parent.mkdir()
    shutil.copy(tmp_path / "study.db", copy)                 # the file alone, not its log
    with sqlite3.connect(copy) as reader:
        assert reader.execute("SELECT COUNT(*) FROM trials").fetchone()[0] == 3
    reread = optuna.load_study(study_name="s", storage=f"sqlite:///{copy}")
    assert [t.value for t in reread.trials] == [1.0, 2.0, 3.0]
