"""A stored study opened for reading or just run: its front, trials, status, pick, export, report.

Reading needs no torch: ``open_existing`` and the front / trials / status / pick methods load only
Optuna and pandas; export and report import what they need when called.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import optuna
import pandas as pd

from search.config import ExperimentConfig
from search.objectives import Objectives
from search.decide.display import DEFAULT_FLOOR, FrontDisplay
from search.decide.noise import first_cost, interval_samples
from search.decide.tables import front_frame, trials_frame
from search.run.storage import open_storage, sqlite_path, storage_url
from search.schema import ConfigError

if TYPE_CHECKING:
    from spaces.space import SearchSpace
    from trainers.eval_context import EvalContext

    from search.decide.export import ExportResult
    from search.decide.pick import PickResult, PickSettings
    from search.decide.status import StudyStatus


@dataclass
class StudyResult:
    """A finished (or partly finished) study: its Optuna object and tables.

    ``context`` and ``space`` are set when the study was run in this process (they hold the
    model factory, data and dense reference that rebuilding a candidate needs); a study opened
    for reading only has ``None`` there.
    """

    config: ExperimentConfig
    study: optuna.Study
    context: "EvalContext | None" = None
    space: "SearchSpace | None" = None

    @property
    def folder(self) -> Path:
        return self.config.study_dir

    @property
    def sources(self) -> dict[str, str]:
        """Where the model and data came from: ``config`` (rebuildable from the study's
        config.yaml) or ``python: <name>`` (objects passed to ``run_search``; rebuilding a
        candidate then needs ``context``, i.e. this process)."""
        return dict(self.study.user_attrs.get("sources", {"model": "config", "data": "config"}))

    @property
    def metric(self) -> str:
        """Name of the selection metric stored in the ``accuracy`` column (default: accuracy)."""
        return str(self.study.user_attrs.get("metric", "accuracy"))

    @property
    def val_samples(self) -> int | None:
        """How many validation predictions the accuracy is a fraction of (the n of its binomial
        interval); ``None`` when the study did not record it (run before it was; a resume
        records it) or its metric is not such a fraction (``f1_macro``, a custom metric)."""
        return interval_samples(self.study.user_attrs.get("val_samples"), self.metric)

    def front_display(self, floor: float | None = DEFAULT_FLOOR) -> FrontDisplay:
        """How this study's front is printed: its objectives, accuracy intervals, noise notes in
        its first cost, and the points within ``floor`` of the dense accuracy (``None``: all)."""
        objectives = self.config.search.objectives
        return FrontDisplay(tuple(objectives.metrics), self.val_samples,
                            first_cost(objectives.metrics, objectives.directions),
                            self.dense_reference().get("accuracy"), floor, self.metric)

    def front(self) -> pd.DataFrame:
        """Pareto-optimal completed trials over the configured objectives."""
        objectives = self.config.search.objectives
        return front_frame(self.study, objectives.metrics, objectives.directions)

    def trials(self) -> pd.DataFrame:
        return trials_frame(self.study)

    def dense_reference(self) -> dict[str, float]:
        """Metrics of the dense reference as trained (no pruning, no fine-tuning)."""
        return dict(self.study.user_attrs.get("dense_reference", {}))

    # --- deciding: status, pick, reevaluate, export, report (search.decide.*) ---
    def status(self) -> "StudyStatus":
        """Trials by state, budget left, time spent, front size and hypervolume."""
        from search.decide.status import study_status

        objectives = self.config.search.objectives
        budget = int(self.study.user_attrs.get("n_trials", self.config.search.n_trials))
        epochs = self.study.user_attrs.get("budget_epochs", self.config.search.budget_epochs)
        return study_status(self.study, objectives.metrics, objectives.directions, budget,
                            self.dense_reference(), epochs)

    def pick(self, settings: "PickSettings | None" = None, **constraints: Any) -> "PickResult":
        """One trial by constraints (``max_flops=2e6, min_accuracy=0.95``, ``knee=True``, ...)."""
        from search.decide.pick import PickSettings, pick_trial

        settings = settings or PickSettings(**constraints)
        settings.check_metric(self.metric)
        objectives = self.config.search.objectives
        return pick_trial(self.trials(), settings, objectives.metrics, objectives.directions,
                          self.val_samples,
                          self.reevaluation(summary=True) if settings.reevaluated else None,
                          metric=self.metric)

    def reevaluate(self, trials: Sequence[int] | None = None, *, epochs: int | None = None,
                   repeats: int = 3, floor: float | None = DEFAULT_FLOOR,
                   log: Callable[[str], None] = print, **context: Any) -> pd.DataFrame:
        """Retrain ``trials`` (default: the front at or above ``floor``, ``None``: all of it)
        ``repeats`` times with seeds ``seed + 1 ... + repeats`` and ``epochs`` of fine-tuning
        (default: the trial's own); store each repeat in ``<study>/reevaluation.csv`` and return
        the summary of these trials (``search.decide.reevaluate``). ``context``: as for
        ``export``."""
        from search.decide.reevaluate import reevaluate_trials

        return reevaluate_trials(self, trials, epochs=epochs, repeats=repeats, floor=floor,
                                 log=log, **context)

    def reevaluation(self, *, summary: bool = False) -> pd.DataFrame:
        """The stored re-evaluation: one row per repeat (``reevaluation.csv``), or with
        ``summary`` one per trial and fine-tune length (mean, 95% interval, spread, the search's
        own accuracy); an empty frame when the study has none."""
        from search.decide.reevaluate import read_rows, searched_accuracies, summarise

        rows = read_rows(self.folder)
        if not summary:
            return rows
        return summarise(rows, searched_accuracies(self.trials()), self.metric)

    def export(self, trial: int | None = None, *, pick: "PickSettings | None" = None,
               folder: str | Path | None = None, log: Callable[[str], None] = print,
               **context: Any) -> "ExportResult":
        """Export ``trial`` (or the one ``pick`` chooses) to ``<study>/exports/<trial>/``.

        A study run in this process is exported from its own context; one opened from disk
        with a custom model needs ``model_factory`` / ``data`` (and ``loss_fn``, ``metric_fn``,
        ``dense_key`` if ``run_search`` had them) in ``context``.
        """
        from search.decide.export import export_trial
        from search.schema import ConfigError

        if (trial is None) == (pick is None):
            raise ConfigError("export needs exactly one of a trial number or pick constraints")
        if pick is not None:
            found = self.pick(pick)
            if not found:
                raise ConfigError(found.reason)
            trial = found.trial
        return export_trial(self, int(trial), folder=folder, log=log, **context)

    def report(self, *, picks: Sequence["PickSettings"] = (), trials: Sequence[int] = (),
               folder: str | Path | None = None) -> Path:
        """Write ``<study>/report/`` (figures + index.html); return the index path."""
        from search.decide.report import write_report

        return write_report(self, picks=picks, trials=trials, folder=folder)


def open_existing(config: ExperimentConfig) -> StudyResult:
    """Open a stored study for reading (pareto, pick, export, report) without running anything."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = storage_url(config)
    if sqlite_path(url) is not None and not sqlite_path(url).is_file():
        root = Path(config.output_dir)
        others = sorted(p.parent.name for p in root.glob("*/config.yaml")) if root.is_dir() else []
        hint = (f"the studies in '{root}' are {', '.join(others)}: give --study NAME, or run "
                f"`sparsity-search run` first" if others else "run `sparsity-search run` first")
        raise ConfigError(f"no study storage at '{sqlite_path(url)}'; {hint}")
    try:
        study = optuna.load_study(study_name=config.study, storage=open_storage(url))
    except KeyError as exc:
        raise ConfigError(f"storage '{url}' has no study named '{config.study}'") from exc
    stored = study.user_attrs.get("objectives")
    if stored is not None and stored != config.search.objectives.to_config_value():
        # Read with the study's own objectives (opened by --storage, or with another config's):
        # the front, pick and the hypervolume were judged on the config's before.
        objectives = Objectives.from_config_value(stored, "search.objectives")
        config = replace(config, search=replace(config.search, objectives=objectives))
    return StudyResult(config, study)
