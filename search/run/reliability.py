"""Trials whose process died: find them, mark them failed ("interrupted") and retry them once.

A study may be killed at any moment (``kill -9``, a pre-empted machine, a lost worker). Finished
trials are safe (each is one storage transaction), but a trial that was running stays ``RUNNING``
forever unless someone notices its process is gone. Two signals tell us:

- **owner**: every trial records, atomically with its creation (or its pop from the waiting queue),
  which process runs it (host, pid, process start time). On the same host a dead owner is seen at
  once; this is what makes a resumed single-process run sweep its own killed trial immediately.
- **heartbeat**: the process running a trial refreshes a timestamp every ``heartbeat_interval``
  seconds (Optuna's heartbeat thread). A trial whose heartbeat is older than ``grace_period`` is
  stale even when its owner ran on another host. RDB storages keep Optuna's own heartbeat table;
  Optuna gives journal storages none, so ``HeartbeatJournalStorage`` keeps it as a system attr.

Optuna runs ``fail_stale_trials`` before every trial of ``study.optimize``; ``sweep_interrupted``
runs it once at start-up. A stale trial gets the user attr ``fail_reason = "interrupted"``, becomes
``FAIL`` and its parameters are enqueued once (``RetryInterruptedTrial``, user attr ``retry_of``).
"""
from __future__ import annotations

import os
import socket
import time
import warnings
from datetime import datetime
from typing import Any, Callable

import optuna
from optuna.exceptions import ExperimentalWarning, UpdateFinishedTrialError
from optuna.storages import JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.trial import FrozenTrial, TrialState

from search.run.refine_settings import REFINED_KEY

OWNER_KEY = "sparsity_search:owner"          # system attr: {"host", "pid", "start"}
CLAIM_PREFIX = "sparsity_search:claim:"     # system attr per process popping a waiting trial
HEARTBEAT_KEY = "sparsity_search:heartbeat"  # system attr (journal only): unix time
INTERRUPTED = "interrupted"                  # the fail_reason of a trial whose process died
MAX_RETRY = 1
RETRY_KEEPS = ("origin", REFINED_KEY)         # user attrs a retry keeps: where its candidate came from


# --------------------------------------------------------------------------- process identity
def process_start(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (Linux), to tell a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[19]) if len(fields) > 19 else None


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def current_owner() -> dict[str, Any]:
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "start": process_start(pid)}


def _claim_key(owner: dict[str, Any]) -> str:
    return f"{CLAIM_PREFIX}{owner['host']}:{owner['pid']}:{owner['start']}"


def owner_alive(owner: Any) -> bool | None:
    """True / False for an owner on this host; None when it can't be told (another host)."""
    if not isinstance(owner, dict) or owner.get("host") != socket.gethostname():
        return None
    pid = int(owner.get("pid", -1))
    if pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass                      # exists, belongs to someone else
    if _is_zombie(pid):
        return False
    start = owner.get("start")
    return start is None or process_start(pid) in (None, start)


# --------------------------------------------------------------------------- retry callback
class RetryInterruptedTrial(RetryHeartbeatStaleTrialCallback):
    """Enqueue a stale trial's parameters once more, linked by the user attr ``retry_of``.

    Unlike the parent, the new trial does not inherit the dead trial's measurements (its metrics
    and ``fail_reason`` would be wrong for the retry), only where its candidate came from
    (``origin``: a baseline, a refinement and its parents); Optuna's ``failed_trial`` /
    ``retry_history`` system attrs are kept, so ``retried_trial_number`` still works.
    """

    def __init__(self, max_retry: int = MAX_RETRY) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            super().__init__(max_retry=max_retry)

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        history = list(trial.system_attrs.get("retry_history", [])) + [trial.number]
        if self._max_retry is not None and len(history) > self._max_retry:
            return
        system_attrs = {k: v for k, v in trial.system_attrs.items()
                        if k not in (OWNER_KEY, HEARTBEAT_KEY) and not k.startswith(CLAIM_PREFIX)}
        system_attrs.update(failed_trial=history[0], retry_history=history)
        where_from = {key: trial.user_attrs[key] for key in RETRY_KEEPS if key in trial.user_attrs}
        study.add_trial(optuna.create_trial(
            state=TrialState.WAITING, params=trial.params, distributions=trial.distributions,
            user_attrs={"retry_of": trial.number, **where_from}, system_attrs=system_attrs))


# --------------------------------------------------------------------------- storage mixin
class _OwnedTrials:
    """Mixin for Optuna storages: record each trial's owner, find trials whose owner is gone.

    Subclasses give ``_heartbeat_stale_ids(study_id)`` (trials stale by their heartbeat).
    """

    grace_period: int | None
    heartbeat_interval: int | None

    def _owner_template(self) -> FrozenTrial:
        return FrozenTrial(
            number=-1, state=TrialState.RUNNING, value=None, datetime_start=datetime.now(),
            datetime_complete=None, params={}, distributions={}, user_attrs={},
            system_attrs={OWNER_KEY: current_owner()}, intermediate_values={}, trial_id=-1)

    def set_trial_state_values(self, trial_id: int, state: TrialState,
                               values: Any = None) -> bool:
        if state == TrialState.RUNNING:
            # Popping a waiting trial is not atomic with recording its owner: leave a pending
            # claim first (one key per process, so racing workers don't overwrite each other).
            # A RUNNING trial without an owner is stale when all its claimants are dead.
            me = current_owner()
            try:
                self.set_trial_system_attr(trial_id, _claim_key(me), me)  # type: ignore
            except UpdateFinishedTrialError:
                pass
        popped = super().set_trial_state_values(trial_id, state, values)  # type: ignore[misc]
        if popped and state == TrialState.RUNNING:
            self.set_trial_system_attr(trial_id, OWNER_KEY, current_owner())  # type: ignore
        return popped

    def _grace(self) -> float:
        return float(self.grace_period or 2 * (self.heartbeat_interval or 0))

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        """Running trials of dead local owners, or with a stale heartbeat; marked "interrupted".

        Optuna fails the returned trials right after this call. Finished trials are read-only,
        so the reason is written here, while they are still RUNNING.
        """
        beat_stale = set(self._heartbeat_stale_ids(study_id))
        stale = set()
        now = datetime.now()
        running = self.get_all_trials(study_id, deepcopy=False,  # type: ignore[attr-defined]
                                      states=(TrialState.RUNNING,))
        for trial in running:
            owner = trial.system_attrs.get(OWNER_KEY)
            # A live owner on this host is believed over a late heartbeat (a busy machine, a
            # locked SQLite file or a dead heartbeat thread delay beats, not the trial).
            if trial._trial_id in beat_stale and owner_alive(owner) is not True:
                stale.add(trial._trial_id)
            claims = [v for k, v in trial.system_attrs.items() if k.startswith(CLAIM_PREFIX)]
            if owner is not None:
                if owner_alive(owner) is False:
                    stale.add(trial._trial_id)
            elif claims:
                if all(owner_alive(claim) is False for claim in claims):
                    stale.add(trial._trial_id)
            else:
                # Written by a process that records no owner: stale once old enough.
                started = trial.datetime_start or now
                if (now - started).total_seconds() > self._grace() and \
                        HEARTBEAT_KEY not in trial.system_attrs:
                    stale.add(trial._trial_id)
        for trial_id in sorted(stale):
            try:
                self.set_trial_user_attr(trial_id, "fail_reason", INTERRUPTED)  # type: ignore
            except UpdateFinishedTrialError:
                stale.discard(trial_id)
        return sorted(stale)

    def _heartbeat_stale_ids(self, study_id: int) -> list[int]:
        raise NotImplementedError


class SweepingRDBStorage(_OwnedTrials, RDBStorage):
    """``RDBStorage`` (Optuna's heartbeat) that also records owners and sweeps dead local ones."""

    def _create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None
                          ) -> FrozenTrial:
        return super()._create_new_trial(study_id, template_trial or self._owner_template())

    def _heartbeat_stale_ids(self, study_id: int) -> list[int]:
        return RDBStorage._get_stale_trial_ids(self, study_id)

    def record_heartbeat(self, trial_id: int) -> None:
        try:
            super().record_heartbeat(trial_id)
        except Exception:  # e.g. SQLite "database is locked": skip a beat, keep the thread alive
            pass


class HeartbeatJournalStorage(_OwnedTrials, JournalStorage, BaseHeartbeat):
    """``JournalStorage`` with the heartbeat Optuna gives only to RDB storages.

    The heartbeat is a trial system attr (unix time, so hosts' clocks should roughly agree:
    keep ``grace_period`` well above any skew).
    """

    def __init__(self, backend: Any, *, heartbeat_interval: int, grace_period: int | None = None,
                 heartbeat_stale_trial_callback: Callable[[optuna.Study, FrozenTrial], None]
                 | None = None) -> None:
        super().__init__(backend)
        self.heartbeat_interval = heartbeat_interval
        self.grace_period = grace_period
        self.heartbeat_stale_trial_callback = heartbeat_stale_trial_callback

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        return super().create_new_trial(study_id, template_trial or self._owner_template())

    def record_heartbeat(self, trial_id: int) -> None:
        try:
            self.set_trial_system_attr(trial_id, HEARTBEAT_KEY, time.time())
        except Exception:  # finished meanwhile, or a storage hiccup: skip a beat, keep beating
            pass

    def _heartbeat_stale_ids(self, study_id: int) -> list[int]:
        now = time.time()
        return [t._trial_id for t in self.get_all_trials(study_id, deepcopy=False,
                                                         states=(TrialState.RUNNING,))
                if now - float(t.system_attrs.get(HEARTBEAT_KEY, now)) > self._grace()]

    def get_heartbeat_interval(self) -> int | None:
        return self.heartbeat_interval

    def get_heartbeat_stale_trial_callback(self) -> Callable | None:
        return self.heartbeat_stale_trial_callback


# --------------------------------------------------------------------------- start-up sweep
def sweep_interrupted(study: optuna.Study, log: Callable[[str], None] = print) -> list[int]:
    """Fail (reason "interrupted") and retry the trials whose process is gone; their numbers."""
    before = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    if not before:
        return []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    trials = study.get_trials(deepcopy=False)
    swept = sorted(t.number for t in trials
                   if t.number in before and t.state == TrialState.FAIL)
    for number in swept:
        retry = next((t.number for t in trials if t.user_attrs.get("retry_of") == number), None)
        again = f"; its parameters are retried as trial {retry}" if retry is not None else \
            " (already retried once; not retried again)"
        log(f"trial {number} was interrupted (its process is gone): marked failed{again}")
    return swept


__all__ = ["HeartbeatJournalStorage", "INTERRUPTED", "RetryInterruptedTrial",
           "SweepingRDBStorage", "current_owner", "owner_alive", "sweep_interrupted"]
