"""Python API: run a study and read its results. The command line is a thin layer over this."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import optuna
import pandas as pd

from search.config import ExperimentConfig, load_config
from search.context import build_study_context, set_threads
from search.results import front_frame, trials_frame, write_tables
from search.study import open_study, run_trials, save_study_config
from trainers.evaluate import reference_metrics


@dataclass
class StudyResult:
    """A finished (or partly finished) study: its Optuna object and tables."""

    config: ExperimentConfig
    study: optuna.Study

    @property
    def folder(self) -> Path:
        return self.config.study_dir

    def front(self) -> pd.DataFrame:
        """Pareto-optimal completed trials over the configured objectives."""
        objectives = self.config.search.objectives
        return front_frame(self.study, objectives.metrics, objectives.directions)

    def trials(self) -> pd.DataFrame:
        return trials_frame(self.study)

    def dense_reference(self) -> dict[str, float]:
        """Metrics of the dense reference as trained (no pruning, no fine-tuning)."""
        return dict(self.study.user_attrs.get("dense_reference", {}))


def run_search(config: ExperimentConfig | str | Path | None = None, *,
               log: Callable[[str], None] = print) -> StudyResult:
    """Run (or resume) the study described by ``config`` until its trial budget is finished."""
    if not isinstance(config, ExperimentConfig):
        config = load_config(config)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    config.study_dir.mkdir(parents=True, exist_ok=True)
    set_threads(config)
    context, space = build_study_context(config, log=log)
    study = open_study(config, space)
    if "dense_reference" not in study.user_attrs:
        study.set_user_attr("dense_reference", reference_metrics(space.dense_candidate(), context))
    save_study_config(config)
    try:
        run_trials(study, space, context, config, log=log)
    finally:
        objectives = config.search.objectives
        write_tables(study, config.study_dir, objectives.metrics, objectives.directions)
    return StudyResult(config, study)


def open_existing(config: ExperimentConfig) -> StudyResult:
    """Open a stored study for reading (pareto, pick, export, report) without running anything."""
    from search.schema import ConfigError
    from search.storage import open_storage
    from search.study import storage_url

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = storage_url(config)
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).is_file():
        raise ConfigError(f"no study storage at '{url[len('sqlite:///'):]}'; "
                          f"run `sparsity-search run` first")
    try:
        study = optuna.load_study(study_name=config.study, storage=open_storage(url))
    except KeyError as exc:
        raise ConfigError(f"storage '{url}' has no study named '{config.study}'") from exc
    return StudyResult(config, study)
