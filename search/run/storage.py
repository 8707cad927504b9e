"""Optuna storages from a URL: SQLite (default), a journal file, or any RDB URL.

- ``sqlite:///path/study.db`` and other SQLAlchemy URLs (``postgresql://``, ``mysql://``) give an
  ``RDBStorage`` with a heartbeat, so trials of a killed process are detected as stale. PostgreSQL
  needs a driver: ``pip install 'sparsity-search[postgres]'`` (psycopg 3); a plain
  ``postgresql://`` URL uses it when psycopg2 (SQLAlchemy's default) is not installed.
- ``journal:///path/study.log`` (or a path ending in ``.log`` / ``.journal``) gives a
  ``JournalStorage`` on a file: several processes on one machine (or a shared file system) can
  share it. Optuna gives journals no heartbeat; ``search.run.reliability`` adds one.

With ``heartbeat=True`` (runs), both record which process runs each trial and sweep trials whose
process died: they end ``FAIL`` with ``fail_reason = "interrupted"`` and are retried once.
"""
from __future__ import annotations

import sqlite3
import warnings
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy.exc
from optuna.exceptions import ExperimentalWarning
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.storages.journal._file import BaseJournalFileLock

from search.run.journal_lock import FlockJournalLock
from search.run.reliability import (HeartbeatJournalStorage, RetryInterruptedTrial, SweepingRDBStorage)
from search.schema import ConfigError
from trainers.errors import error_summary
from trainers.file_lock import one_at_a_time

if TYPE_CHECKING:
    from search.config import ExperimentConfig

HEARTBEAT_SECONDS = 10
SQLITE_LOCK_TIMEOUT_S = 60
JOURNAL_SUFFIXES = (".log", ".journal")


SQLITE_PREFIX = "sqlite:///"


def storage_url(config: "ExperimentConfig") -> str:
    """The study's storage: ``search.run.storage``, or SQLite in the study folder."""
    if config.search.storage:
        return config.search.storage
    return f"{SQLITE_PREFIX}{(config.study_dir / 'study.db').resolve()}"


def sqlite_path(url: str) -> Path | None:
    """The database file of a ``sqlite:///`` URL (None for other storages)."""
    return Path(url[len(SQLITE_PREFIX):]) if url.startswith(SQLITE_PREFIX) else None


def absolute_url(url: str) -> str:
    """File storages with relative paths made absolute (for processes in other folders)."""
    if is_journal(url):
        return "journal:///" + str(journal_path(url).resolve())
    path = sqlite_path(url)
    return SQLITE_PREFIX + str(path.resolve()) if path is not None else url


def is_journal(url: str) -> bool:
    return url.startswith("journal://") or url.endswith(JOURNAL_SUFFIXES)


def journal_path(url: str) -> Path:
    return Path(url[len("journal:///"):] if url.startswith("journal:///") else url)


def open_storage(url: str, *, heartbeat: bool = True) -> BaseStorage:
    """Open (creating when needed) the storage at ``url``; a clear ``ConfigError`` if it can't."""
    try:
        with warnings.catch_warnings():
            # Heartbeats are marked experimental in Optuna; they are what makes resume safe.
            warnings.simplefilter("ignore", ExperimentalWarning)
            return _open(url, heartbeat)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"search.storage: cannot open storage '{url}' "
                          f"({error_summary(exc)})") from exc


def repair_journal_tail(path: Path, lock: BaseJournalFileLock) -> bool:
    """Cut a torn last line (no newline) off a journal file; True if one was cut.

    Appends are single ``write`` calls, which a kill does not tear on a local disk, but a crash of
    the machine or a network file system can. Optuna ignores a torn last line when reading, yet
    the next append would glue onto it and make the whole journal unreadable.
    """
    if not path.is_file() or path.stat().st_size == 0:
        return False
    lock.acquire()
    try:
        with open(path, "rb+") as handle:  # non-atomic: in-place truncate under the lock
            handle.seek(-1, 2)
            if handle.read(1) == b"\n":
                return False
            handle.seek(0)
            data = handle.read()
            handle.truncate(data.rfind(b"\n") + 1)
            return True
    finally:
        lock.release()


POSTGRES_PREFIXES = ("postgresql://", "postgres://")


def rdb_url(url: str) -> str:
    """A PostgreSQL URL without a driver name gets psycopg 3 when psycopg2 is not installed;
    with no driver at all, one clear error naming the extra."""
    if not url.startswith(("postgresql", "postgres:")):
        return url
    driver = url.split("://", 1)[0].partition("+")[2]
    wanted = {"": "psycopg2", "psycopg2": "psycopg2", "psycopg": "psycopg"}.get(driver)
    if wanted is None or find_spec(wanted) is not None:
        return url
    if driver == "" and find_spec("psycopg") is not None:
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    raise ConfigError(f"search.storage: '{url}' needs a PostgreSQL driver ({wanted} is not "
                      f"installed); install it with: pip install 'sparsity-search[postgres]'")


class WriteAheadConnection(sqlite3.Connection):
    """A SQLite connection in write-ahead-log mode with ``synchronous=NORMAL``.

    SQLite's default (a rollback journal, ``synchronous=FULL``) syncs the disk at every commit,
    and a trial commits several times (Optuna's ask and tell, its parameters, its metrics): 3-15
    ms a commit on these machines, more on a busy or network disk. In WAL mode with ``NORMAL`` a
    commit is an append to the ``-wal`` file next to the database, synced at checkpoints only.
    The database stays consistent through a crash of the process or of the machine; a power
    loss can take back the last commits (a trial then ends stale and is retried). WAL needs
    every process that opens the file on one machine (SQLite's shared-memory index): workers on
    other machines use a journal file or a database server (see the README). Where the file
    system refuses WAL the connection keeps SQLite's defaults.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        try:
            mode = self.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        except sqlite3.OperationalError:   # locked by a process that keeps the old mode
            return
        if str(mode).lower() == "wal":
            self.execute("PRAGMA synchronous=NORMAL")


def checkpoint_sqlite(storage: BaseStorage) -> None:
    """Copy a SQLite storage's write-ahead log into the database file, so that ``study.db`` alone
    (copied, mailed, opened read-only) holds every trial. Best effort: a passive checkpoint never
    waits for other processes still using the file (the log then keeps what they hold)."""
    rdb = getattr(storage, "_backend", storage)    # Optuna wraps an RDBStorage in a cache
    if not isinstance(rdb, RDBStorage) or sqlite_path(str(rdb.url)) is None:
        return
    try:
        with rdb.engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
    except sqlalchemy.exc.OperationalError:
        pass


def _open(url: str, heartbeat: bool) -> BaseStorage:
    if url.startswith("sqlite:") and (not url.startswith(SQLITE_PREFIX) or ":memory:" in url
                                      or not url[len(SQLITE_PREFIX):].strip()):
        raise ConfigError(f"search.storage must name a database file (sqlite:///path/study.db: "
                          f"a study lives on after the run, and every worker opens the same "
                          f"file), got '{url}'")
    sweep = dict(heartbeat_interval=HEARTBEAT_SECONDS, grace_period=3 * HEARTBEAT_SECONDS,
                 heartbeat_stale_trial_callback=RetryInterruptedTrial())
    if is_journal(url):
        path = journal_path(url)
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FlockJournalLock(str(path))
        backend = JournalFileBackend(str(path), lock_obj=lock)
        if not heartbeat:
            return JournalStorage(backend)
        repair_journal_tail(path, lock)
        return HeartbeatJournalStorage(backend, **sweep)
    url = rdb_url(url)
    engine = {}
    path = sqlite_path(url)
    if path is None:
        return RDBStorage(url) if not heartbeat else SweepingRDBStorage(url, **sweep)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Several local workers (and their heartbeat threads) write one file: wait for the lock
    # rather than fail after SQLite's default 5 s when the machine is busy.
    engine = {"connect_args": {"timeout": SQLITE_LOCK_TIMEOUT_S, "factory": WriteAheadConnection}}
    # Two processes opening a new file at once both created Optuna's tables ("table ... already
    # exists", a UNIQUE failure on alembic_version): the first creates them, the other waits.
    with one_at_a_time(path):
        if not heartbeat:
            return RDBStorage(url, engine_kwargs=engine)
        return SweepingRDBStorage(url, engine_kwargs=engine, **sweep)


__all__ = ["absolute_url", "checkpoint_sqlite", "is_journal", "journal_path", "open_storage",
           "rdb_url", "sqlite_path", "storage_url"]
