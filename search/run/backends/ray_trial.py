"""What runs inside one Ray trial, on whichever node Ray placed it.

The Ray trial evaluates the Optuna trial named in its parameters (asked by the driver's
``OptunaSearch``) with the same objective as a local worker. It records the node that ran it
(``ray_node``: the node's IP, ``ray_node_id``: Ray's node ID, which tells nodes on one host
apart). When a node (or just the trial's worker process) is lost mid-trial, Ray runs the trial
again (``ray.max_failures``) on the same Optuna trial: that attempt finds the earlier attempt's
node recorded and marks the trial (``ray_attempt``: 2, ``ray_lost_node_id``: the lost node), so
the study still ends with exactly ``n_trials`` finished trials and no candidate trained twice.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import optuna
import ray
import torch
from optuna.trial import TrialState
from ray import tune

from search.config import ExperimentConfig
from search.run.budget import PROCESS_ATTRS
from search.run.objective import InvalidCandidate, make_objective
from search.run.storage import open_storage
from search.run.trial_writes import BufferedWrites

TRIAL_NUMBER_KEY = "optuna_trial_number"
OUTCOME_KEY = "outcome"   # in Ray's results: complete | pruned | invalid
DRIVER_ATTR, NODE_ATTR, NODE_ID_ATTR, ATTEMPT_ATTR, LOST_NODE_ATTR = PROCESS_ATTRS[1:6]


@dataclass(frozen=True)
class RayTrialJob:
    """What every Ray trial needs: the config (absolute paths), and the driver's context and
    space, put in Ray's object store once and fetched once per worker (``_trial_state``)."""

    config: ExperimentConfig
    context: Any            # ObjectRef of (EvalContext.portable(), SearchSpace)
    storage_url: str
    threads: int


_PROCESS_CACHE: dict[str, tuple[Callable, optuna.Study]] = {}


def _trial_state(job: RayTrialJob) -> tuple[Callable, optuna.Study]:
    """Objective and study of this Ray worker process, built once (actors are reused)."""
    key = f"{job.storage_url}|{job.config.study}|{job.context.hex()}"
    if key not in _PROCESS_CACHE:
        context, space = ray.get(job.context)
        # A cheap sampler: the trial's parameters are already in the storage, nothing is sampled.
        study = optuna.load_study(study_name=job.config.study,
                                  sampler=optuna.samplers.RandomSampler(),
                                  storage=open_storage(job.storage_url, heartbeat=False))
        objective = make_objective(space, context, job.config, guard_budget=False)
        _PROCESS_CACHE.clear()
        _PROCESS_CACHE[key] = (objective, study)
    return _PROCESS_CACHE[key]


def record_node(trial: optuna.Trial) -> None:
    """Record this node on the trial (one storage transaction); an earlier attempt's node means
    that attempt was lost."""
    attrs = trial.user_attrs
    with BufferedWrites(trial):
        previous = attrs.get(NODE_ID_ATTR)
        if previous is not None:
            trial.set_user_attr(ATTEMPT_ATTR, int(attrs.get(ATTEMPT_ATTR, 1)) + 1)
            trial.set_user_attr(LOST_NODE_ATTR, previous)
        trial.set_user_attr(NODE_ATTR, ray.util.get_node_ip_address())
        trial.set_user_attr(NODE_ID_ATTR, ray.get_runtime_context().get_node_id())


def run_ray_trial(params: dict[str, Any], job: RayTrialJob) -> None:
    """Ray Tune function trainable: evaluate the Optuna trial named in ``params``, report values.

    A candidate stopped early (or rejected before training) is a normal outcome, not an error:
    the trial records it in the storage itself and returns without a result, so Ray neither logs
    an error nor retries it nor restarts the worker (``StudySearch`` sees it already finished).
    """
    torch.set_num_threads(job.threads)
    objective, study = _trial_state(job)
    storage = study._storage  # noqa: SLF001 -- Study exposes no public storage accessor
    number = int(params[TRIAL_NUMBER_KEY])
    trial_id = storage.get_trial_id_from_study_id_trial_number(
        storage.get_study_id_from_name(job.config.study), number)
    trial = optuna.Trial(study, trial_id)
    record_node(trial)
    try:
        values = objective(trial)
    except optuna.TrialPruned:
        study.tell(number, state=TrialState.PRUNED)
        _report_outcome(job, "pruned")
        return
    except InvalidCandidate:
        study.tell(number, state=TrialState.FAIL)
        _report_outcome(job, "invalid")
        return
    tune.report({**dict(zip(job.config.search.objectives.metrics, values)), OUTCOME_KEY: "complete"})


def _report_outcome(job: RayTrialJob, outcome: str) -> None:
    """Ray's result of a trial that ended without objective values (its figures are in the
    storage): the metric names are present (Tune requires them), as NaN."""
    tune.report({**{m: float("nan") for m in job.config.search.objectives.metrics},
                 OUTCOME_KEY: outcome})


__all__ = ["ATTEMPT_ATTR", "DRIVER_ATTR", "LOST_NODE_ATTR", "NODE_ATTR", "NODE_ID_ATTR",
           "OUTCOME_KEY", "RayTrialJob", "TRIAL_NUMBER_KEY", "run_ray_trial"]
