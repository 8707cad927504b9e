"""Start Ray nodes with ``ray start``; find and stop the Ray processes of one Ray temp folder (and
their children), by pid.

Tests start Ray with their own ``RAY_TMPDIR``; every Ray daemon names that folder on its command
line and Ray's workers are their children. Stopping exactly those processes (not ``ray stop``, which
stops every Ray process of the user) leaves other sessions' Ray clusters on a shared machine alone.
Each node gets its own temp folder, so one node can be killed alone (a lost node).
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

# The settings these machines need (docs ENVIRONMENT.md): no token auth, no usage stats.
RAY_NODE_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


# Ports a Ray node takes by default whatever its GCS port (GCS, dashboard, dashboard agent's HTTP
# server, Ray client server): a GCS port drawn at random must not be one of them, or `ray start`
# refuses with "trying to use a port number ... used by other components".
RAY_DEFAULT_PORTS = frozenset({6379, 8265, 52365, 10001})


def free_port() -> int:
    """A free TCP port on loopback that none of Ray's default ports collides with."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in RAY_DEFAULT_PORTS:
            return port


def node_command(temp: Path, *, cpus: int, head_port: int | None = None,
                 address: str | None = None, resources: dict | None = None) -> list[str]:
    """The ``ray start`` command of a head (``head_port``) or of a node joining ``address``."""
    command = [str(Path(sys.executable).parent / "ray"), "start", f"--num-cpus={cpus}",
               "--node-ip-address=127.0.0.1", "--disable-usage-stats", f"--temp-dir={temp}"]
    if head_port is not None:
        command += ["--head", f"--port={head_port}", "--include-dashboard=false"]
    else:
        command += [f"--address={address}"]
    if resources:
        command.append(f"--resources={json.dumps(resources)}")
    return command


def start_node(temp: Path, *, cpus: int, head_port: int | None = None,
               address: str | None = None, resources: dict | None = None,
               cluster: bool = False) -> list[str]:
    """Run ``node_command``; returns the command.

    ``cluster=True`` sets ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=1``: a second node on this host
    joins only with it, and a head must have it too, so its GCS listens on the address a joining
    node resolves 127.0.0.1 to (clients keep ``=0`` and connect on loopback).
    """
    command = node_command(temp, cpus=cpus, head_port=head_port, address=address,
                           resources=resources)
    env = {**os.environ, **RAY_NODE_ENV,
           "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1" if cluster else "0"}
    started = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert started.returncode == 0, started.stderr[-2000:]
    return command


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


def stop_ray_processes(temp_dir: str | Path, grace_seconds: float = 3.0,
                       kill: bool = False) -> list[int]:
    """SIGTERM the processes of ``temp_dir``, SIGKILL what is left after ``grace_seconds``
    (``kill``: SIGKILL at once, as a machine that is lost); return the pids that were found."""
    pids = ray_pids(temp_dir)
    for sig in ((signal.SIGKILL,) if kill else (signal.SIGTERM, signal.SIGKILL)):
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
