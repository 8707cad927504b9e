"""Everything a report shows, read once from the study (the figures and the page only draw it)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from search.decide.hypervolume import completed, hypervolume_history
from search.decide.noise import first_cost
from search.decide.pick import PickResult, PickSettings, pick_trial
from search.decide.retrain import completed_trial
from search.decide.report.importance import objective_importances
from search.decide.status import StudyStatus, study_status
from search.decide.tables import front_of, trials_frame
from search.run.sensitivity import SensitivityResult, load_sensitivity
from spaces.candidate import BITS_PREFIX, SPARSITY_PREFIX


@dataclass
class Picked:
    """One model the report describes in detail: its trial row and why it was chosen."""

    trial: int
    reason: str
    row: dict[str, Any]
    export: dict[str, Any] | None = None      # manifest.json of an existing export

    def layer_values(self, prefix: str) -> dict[str, float]:
        return {k[len(prefix):]: float(v) for k, v in self.row.items()
                if k.startswith(prefix) and pd.notna(v)}

    @property
    def sparsity(self) -> dict[str, float]:
        return self.layer_values(SPARSITY_PREFIX)

    @property
    def bits(self) -> dict[str, float]:
        return self.layer_values(BITS_PREFIX)


@dataclass
class ReportData:
    study: str
    metrics: list[str]
    directions: list[str]
    trials: pd.DataFrame
    done: pd.DataFrame
    front: pd.DataFrame
    dense: dict[str, float]
    status: StudyStatus
    history: pd.DataFrame
    picks: list[Picked]
    importances: dict[str, dict[str, float]]
    importance_note: str = ""
    sensitivity: SensitivityResult | None = None
    notes: list[str] = field(default_factory=list)
    val_samples: int | None = None      # the n of the accuracy intervals (None: not shown)
    metric: str = "accuracy"            # the study's selection metric (the accuracy column)
    model_source: str = "config"        # or "python: <name>": only Python can rebuild it
    cost: str | None = None             # the cost "cheaper" is read in (noise notes)
    folder: Path | None = None          # the study folder (its trials.csv and pareto.csv)


def _export_manifest(study_dir: Path, trial: int) -> dict[str, Any] | None:
    path = study_dir / "exports" / str(trial) / "manifest.json"
    return json.loads(path.read_text()) if path.is_file() else None


def gather(result: Any, picks: Sequence[PickSettings] = (), trials: Sequence[int] = ()
           ) -> ReportData:
    """Read the study behind ``result`` (a ``StudyResult``) into a ``ReportData``.

    The models described in detail are the ``trials`` given plus one per ``PickSettings``; with
    neither, the knee of the front.
    """
    config = result.config
    objectives = config.search.objectives
    metrics, directions = objectives.metrics, objectives.directions
    frame = trials_frame(result.study)
    dense = result.dense_reference()
    budget = int(result.study.user_attrs.get("n_trials", config.search.n_trials))
    chosen: list[Picked] = []
    notes: list[str] = []
    by_number = {int(r["trial"]): r for r in frame.to_dict(orient="records")} if len(frame) else {}
    for number in trials:   # refused as export refuses it: a report of nothing is no report
        completed_trial(result.study, number, done="reported", name="--trial")
        chosen.append(Picked(number, "requested by trial number", by_number[number]))
    settings = list(picks) or ([] if trials else [PickSettings(knee=True)])
    for setting in settings:
        setting.check_metric(result.metric)
        found: PickResult = pick_trial(
            frame, setting, metrics, directions, result.val_samples,
            result.reevaluation(summary=True) if setting.reevaluated else None,
            metric=result.metric)
        if found:
            chosen.append(Picked(found.trial, found.reason, found.row or {}))
        else:
            notes.append(found.reason)
    unique: dict[int, Picked] = {}
    for item in chosen:
        unique.setdefault(item.trial, item)
    for item in unique.values():
        item.export = _export_manifest(config.study_dir, item.trial)
    importances, note = objective_importances(result.study, metrics)
    return ReportData(
        study=config.study, folder=config.study_dir, metrics=list(metrics),
        directions=list(directions), trials=frame,
        done=completed(frame, metrics), front=front_of(frame, metrics, directions),
        dense=dense, status=study_status(result.study, metrics, directions, budget, dense,
                                         result.study.user_attrs.get("budget_epochs")),
        history=hypervolume_history(frame, metrics, directions, dense),
        picks=list(unique.values()), importances=importances, importance_note=note,
        sensitivity=load_sensitivity(config.study_dir), notes=notes,
        val_samples=result.val_samples, cost=first_cost(metrics, directions),
        metric=result.metric, model_source=result.sources.get("model", "config"))
