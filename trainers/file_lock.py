"""A lock among the processes of this machine on a path (no torch: the storage opens with it)."""
from __future__ import annotations

import fcntl
import hashlib
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def one_at_a_time(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` among the processes of this machine (``flock``; the kernel
    releases it when its holder dies). The lock file lives in the temporary folder, not beside
    ``path``: a study folder holds only the study's files."""
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:24]
    lock = Path(tempfile.gettempdir()) / f"sparsity-search-{digest}.lock"
    try:
        handle = open(lock, "a")
    except OSError:          # no writable temporary folder: go on without the lock
        yield
        return
    with handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


__all__ = ["one_at_a_time"]
