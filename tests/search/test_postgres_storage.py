"""A study in a real PostgreSQL server (started by the test session: tests/postgres_server.py):
two local workers, one of them killed with SIGKILL mid-trial, a resume, and every reading command
run from another process. Counts are read from the storage itself.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import optuna
import pytest
import yaml

from conftest import REPO_ROOT, cli_command, cli_env
from search.cli.main import EXIT_BAD_INPUT, main
from search.run.storage import rdb_url
from test_kill_resume import (BUDGET, check_storage, launch, snapshot,
                              stop_a_worker_inside_a_trial, wait_for_line, write_config)

# Every reading command, from one other process (each would pay torch's import on its own).
READERS = """
import sys
from search.cli.main import main
where = ["--output-dir", sys.argv[1], "--study", "killed"]
for command in (["status", "--json"], ["pareto", "--format", "csv"], ["pick", "--knee"],
                ["export", "--pick", "--knee"], ["report"]):
    print(f"=== {command[0]}", flush=True)
    code = main([command[0], *where, *command[1:]])
    print(f"=== exit {code}", flush=True)
"""


@pytest.mark.slow
def test_two_workers_on_postgres_survive_a_killed_worker_resume_and_read(tmp_path, postgres_url):
    config = write_config(tmp_path, postgres_url, dense_epochs=20)
    data = yaml.safe_load(config.read_text())
    data["parallel"] = {"workers": 2}
    data["finetune"]["epochs"] = 300    # trials of ~1 s: long enough to be caught inside one
    config.write_text(yaml.safe_dump(data))

    proc = launch(config)
    wait_for_line(proc, rf"\[1/{BUDGET}\] trial")
    number, pid = stop_a_worker_inside_a_trial(postgres_url, proc.pid)
    # Read while the worker is frozen inside its trial: once it is killed, the other worker sees
    # the owner gone and may sweep the trial at once, before any later read.
    done, running = snapshot(postgres_url)
    assert number in running
    os.kill(pid, signal.SIGKILL)                    # a worker dies mid-trial
    output = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, output
    assert "(killed by SIGKILL)" in output and f"finished the budget ({BUDGET}/{BUDGET})" in output
    # the other worker swept the dead one's trial (interrupted), retried it once, filled the budget
    check_storage(postgres_url, [done], {number})

    resumed = subprocess.run(cli_command("run", str(config), "--n-trials", str(BUDGET + 2)),
                             cwd=REPO_ROOT, env=cli_env(), capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    assert f"{BUDGET}/{BUDGET + 2} finished" in resumed.stdout
    check_storage(postgres_url, [done, snapshot(postgres_url)[0]], {number}, budget=BUDGET + 2)
    # Three processes ran trials (two workers, then the resume): every unstructured trial runs
    # the dense shapes and reports the dense reference's one measured latency.
    study = optuna.load_study(study_name="killed", storage=postgres_url)
    latencies = {t.user_attrs.get("latency_ms") for t in study.trials
                 if t.state == optuna.trial.TrialState.COMPLETE}
    assert latencies == {study.user_attrs["dense_reference"]["latency_ms"]}

    read = subprocess.run([sys.executable, "-c", READERS, str(tmp_path / "runs")], cwd=REPO_ROOT,
                          env=cli_env(), capture_output=True, text=True, timeout=300)
    assert read.returncode == 0 and read.stdout.count("=== exit 0") == 5, read.stdout + read.stderr
    status = json.loads(read.stdout.split("=== status\n", 1)[1].split("=== exit", 1)[0])
    assert status["complete"] == BUDGET + 2 and status["budget"] == BUDGET + 2, status
    assert "exported trial" in read.stdout and "preprocessing: synthetic inputs" in read.stdout
    assert (tmp_path / "runs" / "killed" / "report" / "index.html").is_file()


def test_postgres_urls_get_the_installed_driver_or_name_the_extra(tmp_path, capsys):
    assert rdb_url("postgresql://u@db/studies") in ("postgresql://u@db/studies",        # psycopg2
                                                    "postgresql+psycopg://u@db/studies")
    assert rdb_url("sqlite:///x.db") == "sqlite:///x.db"
    # A server that is not there: one line naming the field and the URL, exit 2, nothing left.
    url = "postgresql+psycopg://postgres@127.0.0.1:1/none"
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump({"output_dir": str(tmp_path / "runs"),
                                    "search": {"storage": url}}))
    assert main(["run", str(path)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith(f"error: search.storage: cannot open storage '{url}' (OperationalError")
    assert not (tmp_path / "runs").exists()
