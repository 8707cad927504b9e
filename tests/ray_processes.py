"""Find and stop the Ray processes of one Ray temp folder (and their children), by pid.

Tests start Ray with their own ``RAY_TMPDIR``; every Ray daemon names that folder on its command
line and Ray's workers are their children. Stopping exactly those processes (not ``ray stop``, which
stops every Ray process of the user) leaves other sessions' Ray clusters on a shared machine alone.
"""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every process we can read."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        found[int(entry.name)] = (ppid, cmdline)
    return found


def ray_pids(temp_dir: str | Path) -> list[int]:
    """Processes whose command line names ``temp_dir``, plus all their descendants."""
    marker = str(temp_dir)
    table = _processes()
    roots = {pid for pid, (_, cmd) in table.items() if marker in cmd and pid != os.getpid()}
    result = set(roots)
    grew = True
    while grew:
        children = {pid for pid, (ppid, _) in table.items() if ppid in result} - result
        result |= children
        grew = bool(children)
    result.discard(os.getpid())
    return sorted(result)


def stop_ray_processes(temp_dir: str | Path, grace_seconds: float = 3.0) -> list[int]:
    """SIGTERM the processes of ``temp_dir``, SIGKILL what is left after ``grace_seconds``;
    return the pids that were found."""
    pids = ray_pids(temp_dir)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + (grace_seconds if sig == signal.SIGTERM else 5.0)
        while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
            time.sleep(0.2)
        if not any(_alive(pid) for pid in pids):
            break
    return pids


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is dead for our purposes
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
