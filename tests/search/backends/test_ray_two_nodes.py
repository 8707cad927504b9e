"""Two Ray nodes for real: a head and a second node joined with `ray start --address` on this
machine (each its own CPUs and temp folder; the second one carries a `node2` resource), a study in
PostgreSQL run through both, then the second node killed mid-trial (its raylet and workers, SIGKILL
by pid). Read from the storage itself: exactly `n_trials` finished trials, the lost trial marked and
run again once (on the head), no candidate trained twice, both nodes recorded.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml
from optuna.trial import TrialState

from conftest import REPO_ROOT, cli_command, tiny_config_dict
from ray_processes import free_port, ray_pids, start_node, stop_ray_processes
from search.run.backends.ray_trial import (ATTEMPT_ATTR, LOST_NODE_ATTR, NODE_ATTR, NODE_ID_ATTR,
                                           TRIAL_NUMBER_KEY)
from search.run.budget import WORKER_ATTR
from search.run.storage import open_storage
from test_parallel_ray import RAY_ENV

pytestmark = pytest.mark.slow
BUDGET = 6


@pytest.fixture
def two_nodes():
    """``(address, temp folder of the second node)``; both nodes stopped by pid at the end."""
    root = Path(os.environ["RAY_TMPDIR"]) / "two"
    port = free_port()
    try:
        start_node(root / "head", cpus=1, head_port=port, cluster=True)
        start_node(root / "node2", cpus=1, address=f"127.0.0.1:{port}", resources={"node2": 1},
                   cluster=True)
        yield f"127.0.0.1:{port}", root / "node2"
    finally:
        for node in ("node2", "head"):
            stop_ray_processes(root / node)
        assert ray_pids(root) == []


def _trials(url: str) -> list[optuna.trial.FrozenTrial]:
    storage = open_storage(url, heartbeat=False)
    try:
        return optuna.load_study(study_name="tiny", storage=storage).get_trials(deepcopy=False)
    except KeyError:                 # not created yet
        return []
    finally:
        storage.engine.dispose()


def _pid(trial: optuna.trial.FrozenTrial) -> int:
    """The Ray worker process that runs or ran ``trial`` (user attr ``worker``: host:pid:start)."""
    worker = trial.user_attrs.get(WORKER_ATTR)
    return int(worker.split(":")[1]) if worker else 0


def _kill_node_inside_a_trial(url: str, node: Path, proc: subprocess.Popen) -> int:
    """After the second node finished a trial, freeze its worker while the storage shows it
    running the next one, then SIGKILL every process of that node; the trial's number."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the study ended before the second node could be killed"
        pids = set(ray_pids(node))
        trials = _trials(url)
        done_there = [t for t in trials if t.state == TrialState.COMPLETE and _pid(t) in pids]
        running = [t for t in trials if t.state == TrialState.RUNNING and t.params
                   and _pid(t) in pids and NODE_ID_ATTR in t.user_attrs]
        if done_there and running:
            os.kill(_pid(running[0]), signal.SIGSTOP)
            if _trials(url)[running[0].number].state == TrialState.RUNNING:
                stop_ray_processes(node, kill=True)             # the node is lost
                return running[0].number
            os.kill(_pid(running[0]), signal.SIGCONT)
        time.sleep(0.1)
    raise AssertionError("never saw the second node running a trial after finishing one")


def test_a_study_on_two_nodes_survives_losing_one_mid_trial(tmp_path, two_nodes, postgres_url):
    address, node2 = two_nodes
    data = tiny_config_dict(tmp_path, n_trials=BUDGET, storage=postgres_url,
                            early_stopping={"enabled": False})
    data["finetune"]["epochs"] = 40         # trials of a few seconds: time to catch one running
    data["ray"] = {"max_concurrent": 2, "cpus_per_trial": 1, "max_failures": 1}
    config = tmp_path / "study.yaml"
    config.write_text(yaml.safe_dump(data))
    proc = subprocess.Popen(cli_command("run", str(config), "--address", address), cwd=REPO_ROOT,
                            env=RAY_ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        lost = _kill_node_inside_a_trial(postgres_url, node2, proc)
        output = proc.communicate(timeout=400)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output[-4000:]
    assert f"trial {lost} lost its Ray worker or node; Ray runs it again" in output

    trials = _trials(postgres_url)
    assert len(trials) == BUDGET                                    # no trial added for the loss
    assert [t.state for t in trials] == [TrialState.COMPLETE] * BUDGET
    nodes = {t.user_attrs[NODE_ID_ATTR] for t in trials}
    assert len(nodes) == 2                                          # both nodes ran trials
    retried = [t for t in trials if ATTEMPT_ATTR in t.user_attrs]
    assert [t.number for t in retried] == [lost]                    # marked, run again once
    again = retried[0].user_attrs
    assert again[ATTEMPT_ATTR] == 2 and again[LOST_NODE_ATTR] != again[NODE_ID_ATTR]
    assert {again[LOST_NODE_ATTR], again[NODE_ID_ATTR]} == nodes   # lost on node2, done on head
    assert all(t.user_attrs[NODE_ATTR] for t in trials)             # the node's IP, recorded
    candidates = [json.dumps(t.user_attrs["candidate"], sort_keys=True) for t in trials
                  if "duplicate_of" not in t.user_attrs]
    assert len(candidates) == len(set(candidates))                  # no candidate trained twice
    # Ray's own record: every trial has one successful result, the lost one an error before it.
    folder = tmp_path / "runs" / "tiny" / "ray_results"
    results = [json.loads(line) for path in folder.glob("*/*/result.json")
               for line in path.read_text().splitlines() if line.strip()]
    numbers = sorted(r["config"][TRIAL_NUMBER_KEY] for r in results if r["outcome"] == "complete")
    assert numbers == list(range(BUDGET))
    table = pd.read_csv(tmp_path / "runs" / "tiny" / "trials.csv")
    assert table[NODE_ID_ATTR].nunique() == 2 and table[ATTEMPT_ATTR].count() == 1
