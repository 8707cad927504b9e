"""Atomic file writes and safe checkpoint loading.

Torch is imported by the two checkpoint functions only: writing a table atomically (the study's
CSV files, summaries) needs no torch.
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from trainers.errors import SetupError, error_summary


def atomic_write(path: str | Path, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` then rename onto ``path``: readers never see a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())   # mkstemp makes 0600; give what open() would give
        with open(tmp, "rb") as handle:  # on disk before the rename: a crash leaves old or new
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def remove_stale_temp_files(folder: str | Path, older_than_s: float = 3600.0) -> list[Path]:
    """Delete temporary files ``atomic_write`` left behind when a kill interrupted it.

    Only ``.<name>.<random>.tmp`` files older than ``older_than_s`` go (a write in progress in
    another process is much younger); returns what was removed.
    """
    removed = []
    cutoff = time.time() - older_than_s
    for path in Path(folder).rglob(".*.tmp"):
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                removed.append(path)
        except OSError:
            pass
    return removed


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w") as handle:
            handle.write(text)
    atomic_write(path, write)


class CheckpointError(SetupError):
    """A checkpoint file is corrupt, truncated or not one of ours (refused, never trusted)."""


def save_checkpoint(obj: Any, path: str | Path) -> None:
    import torch

    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def load_checkpoint(path: str | Path) -> Any:
    """Load with ``weights_only=True`` (no code runs); a corrupt or foreign file raises
    ``CheckpointError`` with one clear line."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and unpickler errors all mean "not our checkpoint"
        raise CheckpointError(f"checkpoint '{path}' is corrupt or not a weights-only checkpoint "
                              f"({error_summary(exc)})") from exc
