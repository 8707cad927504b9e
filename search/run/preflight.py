"""Checks run before a study trains or writes anything, so bad input fails in seconds, not hours.

Each raises ``ConfigError`` with one line naming the field, the rule and the value. A refused run
leaves an existing study as it was (these checks only read, or write a probe file they remove).
Data roots and a user's ``module:callable`` are checked by the loaders (``trainers.data``,
``trainers.models``), before any training but after the study folder and storage file exist:
``nothing_left_on_bad_input`` removes what such a refused run created.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from search.config import ExperimentConfig
from search.run.storage import is_journal, journal_path, sqlite_path, storage_url
from search.run.study import check_resumable
from search.schema import ConfigError
from trainers.checkpoint import remove_stale_temp_files
from trainers.device import resolve_device
from trainers.errors import SetupError, error_summary


def check_not_foreign(folder: str | Path, field: str, what: str, marker: str, sign: str) -> None:
    """A folder given by the user that holds other files is refused unless it is an earlier
    ``what`` of ours (its ``marker`` file contains ``sign``): writing would overwrite theirs."""
    folder = Path(folder)
    if not folder.is_dir() or not any(folder.iterdir()):
        return
    mark = folder / marker
    try:
        ours = mark.is_file() and sign in mark.read_text(errors="replace")
    except OSError:
        ours = False
    if not ours:
        raise ConfigError(f"{field}: '{folder}' holds other files and is not an earlier {what} "
                          f"(no {marker} of ours): writing there could overwrite them; give a "
                          f"new or empty folder")


def check_writable_folder(folder: str | Path, field: str, what: str, create: bool = True
                          ) -> Path:
    """``folder`` exists (created if needed) and a file can be written in it; otherwise one
    ``ConfigError`` line naming ``field`` (``output_dir``, ``--to``) and ``what`` it is for.
    ``create=False`` writes nothing: a folder still to be made needs its nearest existing parent
    to be a folder this process may write in (for a check long before the writing)."""
    folder = Path(folder)
    if not create:
        existing = folder
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        problem = ("" if existing.is_dir() and os.access(existing, os.W_OK | os.X_OK) else
                   f"'{existing}' is not a folder" if not existing.is_dir() else
                   f"no permission to write in '{existing}'")
        if problem:
            raise ConfigError(f"{field}: {what} must be writable, cannot write '{folder}' "
                              f"({problem})")
        if existing != folder:   # permissions can say yes where mkdir fails (root in /proc)
            outermost = folder
            while outermost.parent != existing:
                outermost = outermost.parent
            try:
                check_writable_folder(folder, field, what)
            finally:             # what the probe made goes again: nothing is written yet
                shutil.rmtree(outermost, ignore_errors=True)
        return folder
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ConfigError(f"{field}: {what} must be writable, cannot write '{folder}' "
                          f"({error_summary(exc)})") from exc
    return folder


def check_output_dir(config: ExperimentConfig) -> Path:
    """The study folder exists (created if needed) and a file can be written in it."""
    return check_writable_folder(config.study_dir, "output_dir", "the study folder")


def check_device(config: ExperimentConfig) -> None:
    try:
        resolve_device(config.device)
    except ValueError as exc:
        raise ConfigError(f"device: {exc}") from exc


def preflight(config: ExperimentConfig) -> bool:
    """All checks, cheapest first; True when the study already exists (a resume)."""
    check_device(config)
    check_output_dir(config)
    exists = check_resumable(config)
    remove_stale_temp_files(config.study_dir)     # left by writes a kill interrupted
    return exists          # storage opens; same objectives and setup


def _first_missing(path: Path) -> Path | None:
    """The outermost folder (or the file itself) of ``path`` that does not exist yet."""
    path = path.resolve()
    if path.exists():
        return None
    while not path.parent.exists():
        path = path.parent
    return path


def _storage_file(config: ExperimentConfig) -> Path | None:
    url = storage_url(config)
    return journal_path(url) if is_journal(url) else sqlite_path(url)


@contextmanager
def nothing_left_on_bad_input(config: ExperimentConfig) -> Iterator[None]:
    """Remove what a run that stops on bad input created: the study folder (and the folders above
    it) and the storage file (SQLite or journal, with its side files), when they did not exist
    before. Existing files are never touched; an RDB server keeps no study (none was created)."""
    created = [p for p in (_first_missing(config.study_dir), _first_missing(
        _storage_file(config) or config.study_dir)) if p is not None]
    try:
        yield
    except (ConfigError, SetupError):
        for path in created:
            siblings = [path.with_name(path.name + s)
                        for s in ("-journal", "-wal", "-shm", ".flock")]
            for item in [path, *siblings]:
                if item.is_dir():
                    shutil.rmtree(item, ignore_errors=True)
                elif item.exists():
                    item.unlink()
        raise


__all__ = ["check_device", "check_output_dir", "check_writable_folder",
           "nothing_left_on_bad_input", "preflight"]
