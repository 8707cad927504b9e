"""Optuna storages from a URL: SQLite (default), a journal file, or any RDB URL.

- ``sqlite:///path/study.db`` and other SQLAlchemy URLs (``postgresql://``, ``mysql://``) give an
  ``RDBStorage`` with a heartbeat, so trials of a killed process are detected as stale.
- ``journal:///path/study.log`` (or a path ending in ``.log`` / ``.journal``) gives a
  ``JournalStorage`` on a file: several processes on one machine (or a shared file system) can
  share it. Optuna gives journals no heartbeat; see ``search.reliability`` for the stale sweep.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend

from search.schema import ConfigError

HEARTBEAT_SECONDS = 10
JOURNAL_SUFFIXES = (".log", ".journal")


def is_journal(url: str) -> bool:
    return url.startswith("journal://") or url.endswith(JOURNAL_SUFFIXES)


def journal_path(url: str) -> Path:
    return Path(url[len("journal:///"):] if url.startswith("journal:///") else url)


def open_storage(url: str, *, heartbeat: bool = True) -> BaseStorage:
    """Open (creating when needed) the storage at ``url``; a clear ``ConfigError`` if it can't."""
    try:
        if is_journal(url):
            path = journal_path(url)
            path.parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(JournalFileBackend(str(path)))
        if url.startswith("sqlite:///"):
            Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        kwargs = {}
        if heartbeat:
            kwargs = dict(heartbeat_interval=HEARTBEAT_SECONDS,
                          grace_period=3 * HEARTBEAT_SECONDS)
        with warnings.catch_warnings():
            # Heartbeats are marked experimental in Optuna; they are what makes resume safe.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return RDBStorage(url, **kwargs)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"search.storage: cannot open storage '{url}' "
                          f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from exc


__all__ = ["is_journal", "journal_path", "open_storage"]
