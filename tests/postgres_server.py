"""A throwaway PostgreSQL server for the tests: initdb + pg_ctl in a temp folder, loopback, a free
port, trust authentication; stopped and removed at the end (``tests/conftest.py`` fixtures).

The server refuses to run as root, so when the tests run as root it runs as the unprivileged
``postgres`` user (``runuser -u postgres -- ...``), with the folder owned by that user. Binaries come
from the folder ``pg_config --bindir`` prints (Debian: ``apt-get install postgresql``; ``.ci/run``
installs it where it is missing).
"""
from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

USER = "postgres"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def why_unavailable() -> str | None:
    """None when a server can be started here, else the reason (a test skip message)."""
    if shutil.which("pg_config") is None:
        return "PostgreSQL is not installed (no pg_config; `apt-get install -y postgresql`)"
    bindir = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True).stdout
    if not (Path(bindir.strip()) / "initdb").is_file():
        return (f"no PostgreSQL server binaries in `pg_config --bindir` ({bindir.strip()}); "
                f"`apt-get install -y postgresql`")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(USER)
        except KeyError:
            return f"running as root and there is no '{USER}' user to run PostgreSQL as"
        if shutil.which("runuser") is None:
            return "running as root and `runuser` is missing"
    try:
        import psycopg  # noqa: F401  (the driver: pip install 'sparsity-search[postgres]')
    except ImportError:
        return "the PostgreSQL driver psycopg is missing: pip install 'sparsity-search[postgres]'"
    return None


class PostgresServer:
    """``start()``, ``url(database)``, ``create_database(name)``, ``stop()``."""

    def __init__(self) -> None:
        self.bindir = Path(subprocess.run(["pg_config", "--bindir"], capture_output=True,
                                          text=True, check=True).stdout.strip())
        self.folder = Path(tempfile.mkdtemp(prefix="ss-pg-"))
        self.data = self.folder / "data"
        self.port = _free_port()
        self.as_root = os.geteuid() == 0
        if self.as_root:
            entry = pwd.getpwnam(USER)
            os.chown(self.folder, entry.pw_uid, entry.pw_gid)

    def _run(self, tool: str, *args: str) -> subprocess.CompletedProcess:
        command = [str(self.bindir / tool), *args]
        if self.as_root:
            command = ["runuser", "-u", USER, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stderr[-2000:]}")
        return done

    def start(self) -> "PostgresServer":
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", USER, "--no-sync",
                  "-E", "UTF8")
        options = (f"-h 127.0.0.1 -p {self.port} -k {self.folder} -c fsync=off "
                   f"-c max_connections=200")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.folder / "server.log"),
                  "-o", options, "-w", "-t", "60", "start")
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user={USER} dbname=postgres",
                             autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
