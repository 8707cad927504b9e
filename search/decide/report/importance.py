"""Which search dimensions matter: Optuna's parameter importances, one set per objective."""
from __future__ import annotations

import warnings
from typing import Sequence

import optuna

MIN_TRIALS = 4     # fewer completed trials say nothing about importance


def objective_importances(study: optuna.Study, metrics: Sequence[str], seed: int = 0
                          ) -> tuple[dict[str, dict[str, float]], str]:
    """``({objective: {param: importance}}, note)``; importances of one objective sum to 1.

    Uses Optuna's fANOVA evaluator (seeded, so a report is reproducible). Parameters that never
    vary (e.g. a single allowed criterion) are not search dimensions and do not appear. ``note``
    says why the result is empty when it is.
    """
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(done) < MIN_TRIALS:
        return {}, f"parameter importances need at least {MIN_TRIALS} completed trials, " \
                   f"the study has {len(done)}"
    found: dict[str, dict[str, float]] = {}
    for index, metric in enumerate(metrics):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                values = optuna.importance.get_param_importances(
                    study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=seed),
                    target=lambda t, i=index: t.values[i])
        except (RuntimeError, ValueError) as exc:
            return {}, f"parameter importances could not be computed: {exc}"
        found[metric] = {k: float(v) for k, v in values.items()}
    return found, ""
