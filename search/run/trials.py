"""The Optuna loop of one process: run trials until the study holds its budget."""
from __future__ import annotations

from typing import Callable

import optuna

from search.config import ExperimentConfig
from search.run.budget import budget_open, epochs_open
from search.run.objective import make_objective
from search.run.progress import BudgetAndProgress, StudyStopped
from search.run.reliability import sweep_interrupted
from search.run.starting import enqueue_starting_points
from search.run.stop_request import raise_if_requested
from search.run.study import count_finished
from spaces.space import SearchSpace
from trainers.eval_context import EvalContext


def run_trials(study: optuna.Study, space: SearchSpace, context: EvalContext,
               config: ExperimentConfig, log: Callable[[str], None] = print) -> None:
    """Run trials until the study holds ``n_trials`` finished ones (resume-safe; several
    processes may run this on one study at once, see ``search.run.budget``)."""
    budget = config.search.n_trials
    sweep_interrupted(study, log=log)
    done = count_finished(study)
    if done >= budget:
        log(f"study '{config.study}' already has {done}/{budget} finished trials; nothing to "
            f"run (a higher --n-trials / search.n_trials adds trials)")
        return
    if not budget_open(study, budget):
        log(f"study '{config.study}': {done}/{budget} finished, the rest is running elsewhere")
        return
    epochs = config.search.budget_epochs
    if not epochs_open(study.get_trials(deepcopy=False), epochs, config.reserve_epochs()):
        log(f"study '{config.study}': its budget of {epochs} fine-tune epochs is spent or held by "
            f"running trials ({done} trials finished)")
        return
    enqueue_starting_points(study, space, context, config)
    log(f"study '{config.study}': {done}/{budget} finished, running up to {budget - done} more")
    stopping = config.search.early_stopping
    if stopping.active(config.search.objectives.metrics):
        log(stopping.describe(config.last_finetune_epoch()))
    levels = config.search.refine_levels()
    if levels:
        log(config.search.refine.describe(levels))
    callback = BudgetAndProgress(config, log)
    raise_if_requested()    # a Ctrl-C Python swallowed while this process started (see there)
    study.optimize(make_objective(space, context, config), n_trials=None,
                   callbacks=[callback], catch=(Exception,), gc_after_trial=False)
    if callback.stop_reason:
        raise StudyStopped(callback.summary(study))
