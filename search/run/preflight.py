"""Checks run before a study trains or writes anything, so bad input fails in seconds, not hours.

Each raises ``ConfigError`` with one line naming the field, the rule and the value. A refused run
leaves an existing study as it was (these checks only read, or write a probe file they remove).
Data roots are checked by the data set loaders (``trainers.data``), before any training.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from search.config import ExperimentConfig
from search.run.study import check_resumable
from search.schema import ConfigError
from trainers.checkpoint import remove_stale_temp_files
from trainers.device import resolve_device


def _reason(exc: BaseException) -> str:
    text = str(exc).splitlines()[0][:200] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def check_output_dir(config: ExperimentConfig) -> Path:
    """The study folder exists (created if needed) and a file can be written in it."""
    folder = config.study_dir
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ConfigError(f"output_dir: the study folder must be writable, cannot write "
                          f"'{folder}' ({_reason(exc)})") from exc
    return folder


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


__all__ = ["check_device", "check_output_dir", "preflight"]
