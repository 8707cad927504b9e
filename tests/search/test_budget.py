"""The shared trial budget: which trial gets a slot when workers race (search.budget)."""
from __future__ import annotations

import socket
import subprocess
import sys

import optuna
import pytest
from optuna.trial import TrialState

from search.run.budget import SURPLUS_ATTR, BudgetReached, budget_open, claim_slot
from search.run.reliability import OWNER_KEY, process_start


def _study(finished: int) -> optuna.Study:
    study = optuna.create_study()
    for value in range(finished):
        study.add_trial(optuna.trial.create_trial(value=float(value)))
    return study


def _created(study: optuna.Study) -> optuna.Trial:
    """A trial created by a worker (not popped from the queue)."""
    trial_id = study._storage.create_new_trial(study._study_id)
    return optuna.Trial(study, trial_id)


def test_of_two_racing_new_trials_only_the_lower_number_runs():
    study = _study(finished=2)
    first, second = _created(study), _created(study)     # both exist before either checks
    with pytest.raises(BudgetReached, match="budget of 3 trials already taken"):
        claim_slot(second, budget=3)
    claim_slot(first, budget=3)                           # no exception: it runs
    assert study.trials[second.number].user_attrs[SURPLUS_ATTR] is True
    assert SURPLUS_ATTR not in study.trials[first.number].user_attrs


def test_popped_enqueued_trial_counts_newer_running_trials():
    # A queued trial (lower number) popped after a worker created a newer one must not overshoot.
    study = _study(finished=1)
    study.enqueue_trial({"x": 1.0})
    newer = _created(study)
    popped = study.ask()
    assert popped.number < newer.number
    with pytest.raises(BudgetReached):
        claim_slot(popped, budget=2)
    study.tell(popped, state=TrialState.FAIL)
    claim_slot(newer, budget=2)


def test_failed_trials_do_not_count_and_budget_open_sees_running_ones():
    study = _study(finished=1)
    failed = study.ask()
    study.tell(failed, state=TrialState.FAIL)
    running = _created(study)
    claim_slot(running, budget=2)
    assert not budget_open(study, budget=2)
    assert budget_open(study, budget=3)


def test_running_trial_of_a_dead_local_process_does_not_hold_a_slot():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    owner = {"host": socket.gethostname(), "pid": child.pid, "start": process_start(child.pid)}
    child.kill()
    child.wait()
    study = _study(finished=1)
    orphan = _created(study)
    study._storage.set_trial_system_attr(orphan._trial_id, OWNER_KEY, owner)
    assert budget_open(study, budget=2)
    claim_slot(_created(study), budget=2)
    # An owner on another machine cannot be checked from here: its trial keeps its slot.
    remote = _created(study)
    study._storage.set_trial_system_attr(remote._trial_id, OWNER_KEY,
                                         {**owner, "host": "another-host"})
    assert not budget_open(study, budget=3)


def test_a_training_budget_charges_the_epochs_a_schedule_trains(tmp_path):
    """``during_training`` trains ``pruning.during_epochs`` from scratch, not the fine-tune
    epochs: the epoch budget charges those (it charged 1 of 3 before, and a budget of 7 ran 9
    trials), and a trial starts only if its 3 epochs fit."""
    from conftest import tiny_config_dict
    from search.api import run_search
    from search.config import config_from_dict

    raw = tiny_config_dict(tmp_path, n_trials=9, budget_epochs=7, enqueue_dense=False,
                           baselines=[])
    raw["space"] = {"schedules": ["during_training"], "bits": [8, 32]}
    raw["pruning"] = {"during_epochs": 3}
    config = config_from_dict(raw)
    assert config.reserve_epochs() == 3
    trials = run_search(config, log=lambda _: None).trials()
    finished = trials[trials["state"].isin(["COMPLETE", "PRUNED"])]
    assert len(finished) == 2 and (finished["finetune_epochs_done"] == 3).all()
