"""The backend interface: one ``run`` that brings a prepared study up to its trial budget."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping

from search.schema import ConfigError

if TYPE_CHECKING:  # the composition types; importing them here would be circular at runtime
    import optuna

    from search.config import ExperimentConfig
    from spaces.space import SearchSpace
    from trainers.eval_context import EvalContext


class MissingExtra(ConfigError):
    """An optional dependency of the chosen backend is not installed (names the pip extra)."""


@dataclass(frozen=True)
class ContextInputs:
    """The Python objects behind an evaluation context that the config cannot rebuild (a model,
    data, loss or metric given to the Python API), for workers in other processes. ``None`` in
    their place means: rebuild from the config and load ``dense.pt`` from the study folder."""

    data: Any
    model_factory: Callable[[], Any]
    loss_fn: Callable | None
    metric_fn: Callable | None
    dense_state: Mapping[str, Any]

    @classmethod
    def from_context(cls, context: "EvalContext") -> "ContextInputs":
        return cls(context.data, context.model_factory, context.loss_fn, context.metric_fn,
                   dict(context.dense_state))

    def context_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``search.run.context.build_study_context``."""
        return {"data": self.data, "model_factory": self.model_factory, "loss_fn": self.loss_fn,
                "metric_fn": self.metric_fn, "dense_state": self.dense_state}


class Backend(ABC):
    """Runs trials of an opened study until it holds ``config.search.n_trials`` finished ones.

    The caller has already trained (or loaded) the dense reference, opened the study in its Optuna
    storage and saved the config; ``run`` only schedules trials. Every backend evaluates a trial
    with the same objective (``search.run.study.make_objective``) and the same define-by-run space
    (``SearchSpace.suggest``), and records everything in the Optuna storage, so whatever ran a
    study, the same commands read, resume, pick and export it.
    """

    name: str = ""

    def prepare(self, config: "ExperimentConfig") -> None:
        """Called once the config is checked, before the caller loads the data and trains or
        loads the dense reference: start what takes long and needs nothing from them (e.g. the
        processes workers come from). Nothing by default."""

    @abstractmethod
    def run(self, config: "ExperimentConfig", study: "optuna.Study", space: "SearchSpace",
            context: "EvalContext", *, inputs: ContextInputs | None = None,
            log: Callable[[str], None] = print) -> None:
        """Run trials until the budget is reached (raise ``StudyStopped`` if it cannot be).

        ``inputs``: set when ``context`` was built from Python objects (see ``ContextInputs``).
        """
