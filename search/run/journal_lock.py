"""A journal file lock on ``flock``: released by the kernel when its holder dies (Optuna's own
lock files outlive a killed process)."""
from __future__ import annotations

import fcntl
import os

from optuna.storages.journal._file import BaseJournalFileLock  # the lock interface (abstract)


class FlockJournalLock(BaseJournalFileLock):
    """Journal file lock that a killed holder cannot leave behind.

    Optuna's file locks (a symlink or an exclusive file) outlive a process killed while it
    appends; every other process then waits ``grace_period`` (30 s) before breaking them. An
    ``flock`` on ``<journal>.flock`` is released by the kernel when its holder dies. Each
    ``acquire`` opens its own file description, so two storages in one process exclude each other
    too. All processes sharing a journal must use the same lock (``open_storage`` does).
    """

    def __init__(self, target: str) -> None:
        self._path = target + ".flock"
        self._fd: int | None = None

    def acquire(self) -> bool:
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            raise RuntimeError("Error: did not possess lock")
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
