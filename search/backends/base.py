"""The backend interface: one ``run`` that brings a prepared study up to its trial budget."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Callable

from search.schema import ConfigError

if TYPE_CHECKING:  # the composition types; importing them here would be circular at runtime
    import optuna

    from search.config import ExperimentConfig
    from spaces.space import SearchSpace
    from trainers.context import EvalContext


class MissingExtra(ConfigError):
    """An optional dependency of the chosen backend is not installed (names the pip extra)."""


class Backend(ABC):
    """Runs trials of an opened study until it holds ``config.search.n_trials`` finished ones.

    The caller has already trained (or loaded) the dense reference, opened the study in its Optuna
    storage and saved the config; ``run`` only schedules trials. Every backend evaluates a trial
    with the same objective (``search.study.make_objective``) and the same define-by-run space
    (``SearchSpace.suggest``), and records everything in the Optuna storage, so whatever ran a
    study, the same commands read, resume, pick and export it.
    """

    name: str = ""

    @abstractmethod
    def run(self, config: "ExperimentConfig", study: "optuna.Study", space: "SearchSpace",
            context: "EvalContext", *, log: Callable[[str], None] = print) -> None:
        """Run trials until the budget is reached (raise ``StudyStopped`` if it cannot be)."""
