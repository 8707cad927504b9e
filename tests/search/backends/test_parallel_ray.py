"""The Ray Tune backend for real: a cluster started with `ray start --head`, and a local runtime.

Every Ray process lives under the session's RAY_TMPDIR (tests/conftest.py), and the head started
here is stopped by pid when the module ends; the session checks that nothing of Ray survives.
"""
from __future__ import annotations

import os
import re
import subprocess
from datetime import datetime
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from conftest import REPO_ROOT, cli_command, cli_env, tiny_config_dict
from ray_processes import free_port, ray_pids, start_node, stop_ray_processes
from search.run.backends.ray_backend import DRIVER_ATTR
from search.run.budget import WORKER_ATTR
from search.run.storage import open_storage

pytestmark = pytest.mark.slow

RAY_ENV = {**cli_env(), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}


@pytest.fixture(scope="module")
def ray_head():
    """A one-node Ray cluster (the settings these machines need: docs ENVIRONMENT.md)."""
    temp = Path(os.environ["RAY_TMPDIR"]) / "head"
    port = free_port()
    try:
        start_node(temp, cpus=2, head_port=port)
        yield f"127.0.0.1:{port}"
    finally:
        stop_ray_processes(temp)
        assert ray_pids(temp) == []


def _write_config(tmp_path: Path, **sections) -> Path:
    data = tiny_config_dict(tmp_path, n_trials=4)
    data.update(sections)
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _run(*args: str) -> subprocess.CompletedProcess:
    done = subprocess.run(cli_command(*args), cwd=REPO_ROOT, env=RAY_ENV, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def _study(tmp_path: Path) -> optuna.Study:
    url = f"sqlite:///{tmp_path / 'runs' / 'tiny' / 'study.db'}"
    return optuna.load_study(study_name="tiny", storage=open_storage(url))


def test_study_through_a_ray_cluster_is_read_by_the_same_commands(tmp_path, ray_head):
    config = _write_config(tmp_path, ray={"max_concurrent": 2})
    run = _run("run", str(config), "--address", ray_head)
    assert f"connecting to the Ray cluster at {ray_head}" in run.stdout
    assert run.stdout.count("training the dense reference") == 1   # once, by the driver

    study = _study(tmp_path)
    trials = study.get_trials(deepcopy=False)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    for trial in trials:   # everything the local path records, written by the Ray trial
        assert {"accuracy", "flops", "energy_uj", "candidate", DRIVER_ATTR} <= set(trial.user_attrs)
        assert trial.values == [trial.user_attrs[m] for m in ("accuracy", "flops", "energy_uj")]
    first = trials[0].user_attrs
    assert first["flops"] == first["flops_dense"]                     # the queued dense one first
    assert any((tmp_path / "runs" / "tiny" / "ray_results").iterdir())

    pareto = _run("pareto", "--study", "tiny", "--output-dir", str(tmp_path / "runs"), "--all")
    rows = [line.split() for line in pareto.stdout.splitlines()[1:] if line.strip()]
    assert {int(row[0]) for row in rows} == {t.number for t in study.best_trials}
    # the driver's last progress line counts the front as the tables do
    sizes = re.findall(r"\| front size (\d+) \|", run.stdout)
    assert len(sizes) == 4 and int(sizes[-1]) == len(rows)


def test_local_ray_runtime_runs_two_trials_at_once(tmp_path):
    config = _write_config(tmp_path, parallel={"backend": "ray"},
                           ray={"num_cpus": 2, "cpus_per_trial": 1, "max_concurrent": 2})
    run = _run("run", str(config))
    assert "starting a local Ray runtime" in run.stdout

    trials = _study(tmp_path).get_trials(deepcopy=False)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    assert len({t.user_attrs[WORKER_ATTR] for t in trials}) == 2    # two Ray worker processes
    events = sorted([(t.datetime_start, 1) for t in trials]
                    + [(t.datetime_complete, -1) for t in trials])
    running, most = 0, 0
    for _, step in events:
        running += step
        most = max(most, running)
    assert most == 2                                                 # concurrent, never over 2
    assert isinstance(trials[0].datetime_start, datetime)


# --- Early stopping through Ray: a stopped trial is a normal outcome (never an error, a retry or a
# restarted worker), counted toward the budget exactly as local workers count it.
STOPPING = {"n_trials": 10, "baseline_sparsities": [0.5, 0.9], "baseline_bits": [8],
            "early_stopping": {"enabled": True, "rungs": [1], "margin": 0.0}}


def _stopping_config(tmp_path: Path, **sections) -> Path:
    data = tiny_config_dict(tmp_path)
    data["finetune"]["epochs"] = 3
    data["search"] = dict(STOPPING)
    data.update(sections)
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _ray_results(tmp_path: Path) -> list[dict]:
    """Every result Ray recorded, one dict per reported result, over all rounds."""
    import json

    folder = tmp_path / "runs" / "tiny" / "ray_results"
    return [json.loads(line) for path in folder.glob("*/*/result.json")
            for line in path.read_text().splitlines() if line.strip()]


def _check_stopping_run(tmp_path: Path, run: subprocess.CompletedProcess, budget: int,
                        since: int = 0) -> None:
    """``since``: the number of trials the study held before ``run``."""
    study = _study(tmp_path)
    finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    assert len(finished) == budget                                     # exactly the budget
    pruned = [t for t in finished if t.state == TrialState.PRUNED]
    assert pruned and all("dominated by trial" in t.user_attrs["pruned_reason"] for t in pruned)
    assert all(t.state != TrialState.RUNNING for t in study.get_trials(deepcopy=False))
    output = run.stdout + run.stderr
    for noise in ("Trial task failed", "Traceback", "Heartbeat of storage",
                  "Token authentication", "FAILED"):
        assert noise not in output, noise
    # the local workers' progress line, once per trial stopped in this run
    for trial in [t for t in pruned if t.number >= since]:
        assert output.count(f"] trial {trial.number} stopped early: ") == 1
    # Ray ran every trial once: one result per trial, none failed (no error file), none retried
    results = _ray_results(tmp_path)
    assert sorted(r["config"]["optuna_trial_number"] for r in results) == sorted(
        t.number for t in study.get_trials(deepcopy=False))
    assert [r["outcome"] for r in results].count("pruned") == len(pruned)
    folder = tmp_path / "runs" / "tiny" / "ray_results"
    assert not list(folder.glob("*/*/error.*"))


@pytest.mark.parametrize("where", ["local runtime", "head node"])
def test_trials_stopped_early_finish_the_budget_and_resume(tmp_path, where, request):
    ray = {"max_concurrent": 2}
    if where == "local runtime":
        config = _stopping_config(tmp_path, parallel={"backend": "ray"},
                                  ray={**ray, "num_cpus": 2})
        extra: tuple[str, ...] = ()
    else:
        config = _stopping_config(tmp_path, ray=ray)
        extra = ("--address", request.getfixturevalue("ray_head"))
    _check_stopping_run(tmp_path, _run("run", str(config), *extra), 10)
    before = len(_study(tmp_path).trials)
    resumed = _run("run", str(config), *extra, "--n-trials", "14")
    assert "10/14 finished, running 4 more" in resumed.stdout
    _check_stopping_run(tmp_path, resumed, 14, since=before)
