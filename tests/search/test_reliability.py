"""Stale-trial sweep: owners, heartbeats, "interrupted" and one retry, on SQLite and journal."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import FrozenTrial, TrialState

from search.run.journal_lock import FlockJournalLock
from search.run.reliability import (CLAIM_PREFIX, HEARTBEAT_KEY, INTERRUPTED, OWNER_KEY, current_owner, owner_alive, process_start, sweep_interrupted)
from search.run.storage import open_storage, repair_journal_tail

REPO = Path(__file__).resolve().parents[2]
DIST = {"x": FloatDistribution(0.0, 1.0)}
pytestmark = pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")


def dead_owner() -> dict:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    start = process_start(proc.pid)
    proc.wait()
    return {"host": socket.gethostname(), "pid": proc.pid, "start": start}


def running_trial(study: optuna.Study, x: float, system_attrs: dict,
                  started: datetime | None = None) -> int:
    """A RUNNING trial as a (possibly dead) process would have left it in the storage."""
    template = FrozenTrial(number=-1, state=TrialState.RUNNING, value=None,
                           datetime_start=started or datetime.now(), datetime_complete=None,
                           params={"x": x}, distributions=DIST, user_attrs={},
                           system_attrs=system_attrs, intermediate_values={}, trial_id=-1)
    trial_id = study._storage.create_new_trial(study._study_id, template_trial=template)
    return study._storage.get_trial(trial_id).number


@pytest.fixture(params=["sqlite", "journal"])
def study(request, tmp_path):
    url = (f"sqlite:///{tmp_path / 'study.db'}" if request.param == "sqlite"
           else f"journal:///{tmp_path / 'study.log'}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(study_name="s", storage=open_storage(url))


def test_owner_identity_and_liveness():
    me = current_owner()
    assert me["pid"] == os.getpid() and owner_alive(me) is True
    assert owner_alive(dead_owner()) is False
    assert owner_alive({**me, "host": "some-other-host"}) is None      # can't tell: heartbeat
    if me["start"] is not None:                                      # a reused pid is not us
        assert owner_alive({**me, "start": me["start"] - 1}) is False


def test_trials_record_their_owner_atomically(study):
    trial = study.ask()
    assert study._storage.get_trial(trial._trial_id).system_attrs[OWNER_KEY] == current_owner()
    study.tell(trial, 1.0)
    study.enqueue_trial({"x": 0.25})
    popped = study.ask()                          # popped from the waiting queue
    attrs = study._storage.get_trial(popped._trial_id).system_attrs
    assert attrs[OWNER_KEY] == current_owner()
    assert any(key.startswith(CLAIM_PREFIX) for key in attrs)


def test_dead_owner_is_failed_as_interrupted_and_retried_once(study):
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    live = running_trial(study, 0.3, {OWNER_KEY: current_owner()})
    dead = running_trial(study, 0.7, {OWNER_KEY: dead_owner()})
    for key, value in (("origin", "refine"), ("refined_between", [0, 1]), ("accuracy", 0.5)):
        study._storage.set_trial_user_attr(study.trials[dead]._trial_id, key, value)
    logs: list[str] = []
    assert sweep_interrupted(study, log=logs.append) == [dead]
    trials = study.get_trials()
    assert trials[dead].state == TrialState.FAIL
    assert trials[dead].user_attrs["fail_reason"] == INTERRUPTED
    assert trials[live].state == TrialState.RUNNING                    # its owner is alive
    retry = trials[-1]
    assert retry.state == TrialState.WAITING and retry.params == {"x": 0.7}
    # where its candidate came from, not what the dead trial measured
    assert retry.user_attrs == {"retry_of": dead, "origin": "refine", "refined_between": [0, 1]}
    assert OWNER_KEY not in retry.system_attrs
    assert logs and f"trial {dead} was interrupted" in logs[0] and "retried as" in logs[0]

    # The retry runs next (same parameters) and, killed again, is not retried a second time.
    popped = study.ask()
    assert popped.number == retry.number and popped.suggest_float("x", 0, 1) == 0.7
    study._storage.set_trial_system_attr(popped._trial_id, OWNER_KEY, dead_owner())
    assert sweep_interrupted(study, log=logs.append) == [retry.number]
    assert len(study.get_trials()) == len(trials)                       # nothing enqueued
    assert "not retried again" in logs[-1]


def test_a_pending_claim_of_a_dead_process_is_swept(study):
    """Killed between popping a waiting trial and recording the owner."""
    owner = dead_owner()
    number = running_trial(study, 0.5, {f"{CLAIM_PREFIX}x": owner})
    assert sweep_interrupted(study, log=lambda _: None) == [number]


def test_remote_owners_are_judged_by_heartbeat(tmp_path):
    storage = open_storage(f"journal:///{tmp_path / 'study.log'}")
    study = optuna.create_study(study_name="s", storage=storage)
    remote = {"host": "elsewhere", "pid": 1, "start": 1}
    old = time.time() - 10 * storage.grace_period
    fresh = running_trial(study, 0.1, {OWNER_KEY: remote, HEARTBEAT_KEY: time.time()})
    stale = running_trial(study, 0.2, {OWNER_KEY: remote, HEARTBEAT_KEY: old})
    silent = running_trial(study, 0.3, {OWNER_KEY: remote})            # never beat: keep
    ownerless = running_trial(study, 0.4, {},
                              started=datetime.now() - timedelta(seconds=10 * storage.grace_period))
    assert sweep_interrupted(study, log=lambda _: None) == [stale, ownerless]
    states = {t.number: t.state for t in study.get_trials()}
    assert states[fresh] == states[silent] == TrialState.RUNNING


def test_journal_heartbeat_is_recorded_while_a_trial_runs(tmp_path):
    storage = open_storage(f"journal:///{tmp_path / 'study.log'}")
    study = optuna.create_study(study_name="s", storage=storage)
    seen = []
    study.optimize(lambda t: seen.append(storage.get_trial(t._trial_id).system_attrs) or 0.0,
                   n_trials=1)
    assert HEARTBEAT_KEY in study.trials[0].system_attrs
    assert abs(study.trials[0].system_attrs[HEARTBEAT_KEY] - time.time()) < 60


def test_a_torn_journal_tail_is_cut(tmp_path):
    path = tmp_path / "study.log"
    storage = open_storage(f"journal:///{path}")
    optuna.create_study(study_name="s", storage=storage).optimize(
        lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    intact = path.read_bytes()
    path.write_bytes(intact + b'{"op_code": 4, "worker_id"')     # a crash mid-append
    study = optuna.load_study(study_name="s", storage=open_storage(f"journal:///{path}"))
    assert path.read_bytes() == intact
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)  # appends still readable
    assert len(optuna.load_study(study_name="s", storage=open_storage(
        f"journal:///{path}", heartbeat=False)).trials) == 3
    assert repair_journal_tail(path, FlockJournalLock(str(path))) is False


def test_a_journal_lock_held_by_a_killed_process_is_free_at_once(tmp_path):
    target = str(tmp_path / "study.log")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; sys.path.insert(0, sys.argv[1]);"
         "from search.run.journal_lock import FlockJournalLock as L; L(sys.argv[2]).acquire();"
         "print('held', flush=True); time.sleep(60)", str(REPO), target],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    holder.kill()
    holder.wait()
    lock = FlockJournalLock(target)
    started = time.monotonic()
    assert lock.acquire() is True
    assert time.monotonic() - started < 2
    lock.release()


WORKER = """
import sys, time
sys.path.insert(0, sys.argv[1])
import optuna
from search.run.storage import open_storage
study = optuna.load_study(study_name="s", storage=open_storage(sys.argv[2]))
def objective(trial):
    x = trial.suggest_float("x", 0, 1)
    print("started", trial.number, flush=True)
    time.sleep(120)
    return x
study.optimize(objective, n_trials=1)
"""


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_a_killed_worker_is_swept_by_a_live_one_before_its_next_trial(kind, tmp_path):
    """Two workers share a study; one is killed mid-trial; the other fails it as interrupted
    and runs its parameters again, with no restart of anything."""
    url = (f"sqlite:///{tmp_path / 'study.db'}" if kind == "sqlite"
           else f"journal:///{tmp_path / 'study.log'}")
    study = optuna.create_study(study_name="s", storage=open_storage(url))
    worker = subprocess.Popen([sys.executable, "-c", WORKER, str(REPO), url],
                              stdout=subprocess.PIPE, text=True)
    line = worker.stdout.readline().split()
    assert line[0] == "started", line
    killed = int(line[1])
    worker.kill()
    worker.wait()
    worker.stdout.close()
    x_killed = study.trials[killed].params["x"]

    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)   # the live worker
    trials = study.get_trials()
    assert trials[killed].state == TrialState.FAIL
    assert trials[killed].user_attrs["fail_reason"] == INTERRUPTED
    retry = next(t for t in trials if t.user_attrs.get("retry_of") == killed)
    assert retry.state == TrialState.COMPLETE and retry.params["x"] == x_killed
    assert [t.state for t in trials].count(TrialState.COMPLETE) == 2


def test_temp_files_of_interrupted_writes_are_cleaned_when_old(tmp_path):
    from trainers.checkpoint import atomic_write_text, remove_stale_temp_files

    atomic_write_text(tmp_path / "trials.csv", "a,b\n")
    old = tmp_path / ".dense.pt.abc123.tmp"            # what a kill during torch.save leaves
    young = tmp_path / ".pareto.csv.def456.tmp"         # a write in progress elsewhere
    for path in (old, young):
        path.write_bytes(b"partial")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    assert remove_stale_temp_files(tmp_path) == [old]
    assert young.exists() and (tmp_path / "trials.csv").read_text() == "a,b\n"


def test_a_live_local_owner_is_not_swept_for_a_late_heartbeat(tmp_path):
    """A busy machine (or a locked SQLite file) may delay heartbeats; a local owner that is alive
    keeps its trial, a remote one with the same late heartbeat loses it."""
    storage = open_storage(f"journal:///{tmp_path / 'study.log'}")
    study = optuna.create_study(study_name="s", storage=storage)
    late = time.time() - 10 * storage.grace_period
    mine = running_trial(study, 0.1, {OWNER_KEY: current_owner(), HEARTBEAT_KEY: late})
    remote = running_trial(study, 0.2, {OWNER_KEY: {"host": "elsewhere", "pid": 1, "start": 1},
                                        HEARTBEAT_KEY: late})
    assert sweep_interrupted(study, log=lambda _: None) == [remote]
    assert study.get_trials()[mine].state == TrialState.RUNNING
