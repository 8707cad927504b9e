"""optuna-dashboard reads the study storage: start it on loopback, find the study, stop it."""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("optuna_dashboard", reason="optuna-dashboard is in the dev extra: "
                                               "pip install -e '.[dev]'")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_dashboard_lists_the_study(finished_study, tmp_path):
    db = tmp_path / "study.db"     # a copy: the dashboard may touch the storage's version table
    shutil.copy(finished_study.folder / "study.db", db)
    port = _free_port()
    script = Path(sys.executable).with_name("optuna-dashboard")
    command = [str(script)] if script.is_file() else [
        sys.executable, "-c", "import sys; from optuna_dashboard._cli import main; "
                              "sys.argv[0] = 'optuna-dashboard'; main()"]
    server = subprocess.Popen([*command, f"sqlite:///{db}", "--host", "127.0.0.1",
                               "--port", str(port), "--quiet"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        studies = None
        while time.monotonic() < deadline and studies is None:
            if server.poll() is not None:
                pytest.fail(f"optuna-dashboard exited: {server.stderr.read().decode()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies",
                                            timeout=5) as reply:
                    studies = json.loads(reply.read())["study_summaries"]
            except OSError:
                time.sleep(0.3)
        assert studies is not None, "optuna-dashboard did not answer within 60 s"
        names = {s["study_name"]: s for s in studies}
        assert "finished" in names
        assert len(names["finished"]["directions"]) == 3
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        server.stderr.close()
