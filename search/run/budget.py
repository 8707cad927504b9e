"""An exact trial budget shared by concurrent workers (processes or machines) on one storage.

Optuna's ``optimize`` checks a budget only after each trial, so N workers that all see
``budget - 1`` finished trials would start N more. Here a trial, once created (so it is visible
to every other worker), claims a slot: it runs only if fewer than ``budget`` *other* live trials
(complete, pruned or running) come before it. "Before" is settled by the storage itself:

- a newly created trial counts finished trials and the running trials with a lower number (trial
  numbers follow the storage's write order, so of two racing workers exactly one counts the
  other);
- a trial popped from the queue of enqueued trials (which may carry a lower number than trials
  created meanwhile) counts every other live trial;
- running trials whose owner process on this machine is gone are not live
  (``search.run.reliability`` records owners and sweeps such trials).

A trial that finds no slot is marked ``budget_surplus`` and failed without sampling or training
anything: it is not counted, not retried, and ``trials.csv`` leaves it out. A race where both
sides count each other can only under-fill, never overshoot; the loser sees the budget still
open and simply asks for another trial.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.run.reliability import OWNER_KEY, current_owner, owner_alive

SURPLUS_ATTR = "budget_surplus"
WORKER_ATTR = "worker"
# Attributes naming the process(es) and Ray node(s) that ran a trial: never copied from one trial
# to another (search.run.backends.ray_trial names the Ray ones).
PROCESS_ATTRS = (WORKER_ATTR, "ray_driver", "ray_node", "ray_node_id", "ray_attempt",
                 "ray_lost_node_id")
LIVE_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED)


class BudgetReached(RuntimeError):
    """This trial found the budget taken by other workers' trials; it was not run."""


def process_token() -> str:
    """``host:pid:start`` naming this process, recorded on the trials it evaluates (user attr
    ``worker``: which process trained a trial, e.g. which Ray worker)."""
    owner = current_owner()
    return f"{owner['host']}:{owner['pid']}:{owner['start']}"


def is_enqueued(trial: FrozenTrial) -> bool:
    return "fixed_params" in trial.system_attrs


def is_live(trial: FrozenTrial) -> bool:
    """Complete, pruned, or running with an owner that may still be alive (the owner recorded by
    ``search.run.reliability`` when the trial was created or popped; unknown owners count as alive)."""
    if trial.state in FINISHED_STATES:
        return True
    return (trial.state == TrialState.RUNNING
            and owner_alive(trial.system_attrs.get(OWNER_KEY)) is not False)


def live_trials(study: optuna.Study) -> list[FrozenTrial]:
    trials = study.get_trials(deepcopy=False, states=LIVE_STATES)
    return [t for t in trials if is_live(t)]


def comes_before(other: FrozenTrial, me: FrozenTrial) -> bool:
    """Whether live ``other`` holds its share of the budget before ``me`` (the rule in the
    module doc)."""
    return (other.number != me.number and is_live(other)
            and (is_enqueued(me) or other.state != TrialState.RUNNING
                 or other.number < me.number or is_enqueued(other)))


def slots_taken_before(me: FrozenTrial, trials: Iterable[FrozenTrial]) -> int:
    """How many live trials other than ``me`` come before it."""
    return sum(1 for other in trials if comes_before(other, me))


def claim_slot(trial: optuna.Trial, budget: int,
               trials: Sequence[FrozenTrial] | None = None) -> None:
    """Raise ``BudgetReached`` (marking the trial as surplus) if no budget slot is left for it.

    Call at the start of the objective, before anything is sampled or trained. ``trials``: the
    study's trials read at the start of this trial (read here when not given).
    """
    if trials is None:
        trials = trial.study.get_trials(deepcopy=False, states=LIVE_STATES)
    trials = [t for t in trials if t.state in LIVE_STATES]
    me = next((t for t in trials if t.number == trial.number), None)
    if me is None:  # not running any more (e.g. failed by a stale-trial sweep): do not run it
        raise BudgetReached(f"trial {trial.number} is no longer running")
    taken = slots_taken_before(me, trials)
    if taken >= budget:
        trial.set_user_attr(SURPLUS_ATTR, True)
        raise BudgetReached(f"budget of {budget} trials already taken by other workers' trials; "
                            f"trial {trial.number} was not run")


def budget_open(study: optuna.Study, budget: int,
                trials: Sequence[FrozenTrial] | None = None) -> bool:
    """Whether live trials (finished plus running) leave room for another one (``trials``: the
    study's trials as just read, to read them once per step)."""
    if trials is None:
        return len(live_trials(study)) < budget
    return sum(1 for t in trials if t.state in LIVE_STATES and is_live(t)) < budget


def is_surplus(trial: FrozenTrial) -> bool:
    return bool(trial.user_attrs.get(SURPLUS_ATTR))


# A budget in training: ``search.budget_epochs`` fine-tune epochs over the whole study. A trial
# starts only if the epochs spent (finished trials' ``finetune_epochs_done``: a screened-out or
# duplicate candidate spent 0, one stopped at rung N spent N) plus the epochs reserved by the
# running trials before it (each the most a candidate may train, ``reserve``) leave room for its
# own full fine-tune: the budget is never overshot, whatever the workers.
EPOCHS_ATTR = "finetune_epochs_done"


def epochs_spent(trials: Iterable[FrozenTrial]) -> int:
    """Fine-tune epochs the finished trials trained."""
    return sum(int(t.user_attrs.get(EPOCHS_ATTR, 0) or 0) for t in trials
               if t.state in FINISHED_STATES)


def epochs_taken(trials: Sequence[FrozenTrial], reserve: int,
                 me: FrozenTrial | None = None) -> int:
    """Spent plus reserved: by every running trial, or (``me`` given) by those before ``me``."""
    running = [t for t in trials if t.state == TrialState.RUNNING and is_live(t)
               and (me is None or comes_before(t, me))]
    return epochs_spent(trials) + reserve * len(running)


def claim_epochs(trial: optuna.Trial, budget_epochs: int, reserve: int,
                 trials: Sequence[FrozenTrial]) -> None:
    """Raise ``BudgetReached`` (marking the trial as surplus) if its full fine-tune of
    ``reserve`` epochs would overshoot ``budget_epochs``."""
    me = next((t for t in trials if t.number == trial.number), None)
    if me is None:
        raise BudgetReached(f"trial {trial.number} is no longer running")
    if epochs_taken(trials, reserve, me) + reserve > budget_epochs:
        trial.set_user_attr(SURPLUS_ATTR, True)
        raise BudgetReached(f"budget of {budget_epochs} fine-tune epochs spent or held by running "
                            f"trials; trial {trial.number} was not run")


def epochs_open(trials: Sequence[FrozenTrial], budget_epochs: int | None, reserve: int) -> bool:
    """Whether the epoch budget (None: none) leaves room for one more full fine-tune."""
    return budget_epochs is None or epochs_taken(trials, reserve) + reserve <= budget_epochs

