"""Tables of a study read from its Optuna storage: trials.csv, pareto.csv, the printed front."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import optuna
import pandas as pd

from search.decide.noise import INTERVAL_COLUMN, NOISE_COLUMN, interval_texts, noise_notes
from search.pareto import CONSTRAINTS_KEY, FEASIBLE, feasible, pareto_front
from search.run.budget import is_surplus
from spaces.candidate import BITS_PREFIX, SPARSITY_PREFIX
from trainers.checkpoint import atomic_write_text
from trainers.costs.metrics import column_name, format_value, headline_metrics

# The front table's columns that describe the candidate, not a metric.
LAYER_COLUMNS = ("trial", "sparsity/layer", "bits/layer", "criterion")


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per trial (budget-surplus ones left out): state, metrics, labels, parameters."""
    rows = []
    for trial in study.get_trials(deepcopy=False):
        if is_surplus(trial):  # created by a worker after the budget was taken; never run
            continue
        row = {"trial": trial.number, "state": trial.state.name}
        for key, value in trial.user_attrs.items():
            if key == "candidate":
                row.update(value)
            else:
                row[key] = value
        if CONSTRAINTS_KEY in trial.system_attrs:   # the study has search.constraints
            row[FEASIBLE] = feasible(trial)
        if trial.datetime_start and trial.datetime_complete:
            row["duration_s"] = (trial.datetime_complete - trial.datetime_start).total_seconds()
        rows.append(row)
    return pd.DataFrame(rows)


def within_constraints(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows that meet the study's ``search.constraints`` (all rows of a study without):
    the front, pareto.csv and ``pick`` are the feasible ones, as ``study.best_trials`` and the
    progress lines count them."""
    if FEASIBLE not in frame:
        return frame
    return frame[frame[FEASIBLE].fillna(True).astype(bool)]


def front_frame(study: optuna.Study, metrics: Sequence[str], directions: Sequence[str]
                ) -> pd.DataFrame:
    """Completed trials on the Pareto front of ``metrics`` (our own front function)."""
    return front_of(trials_frame(study), metrics, directions)


def front_of(frame: pd.DataFrame, metrics: Sequence[str], directions: Sequence[str]
             ) -> pd.DataFrame:
    """The front of a ``trials_frame`` (read once, used for several tables)."""
    if frame.empty or "state" not in frame:
        return frame
    done = frame[frame["state"] == "COMPLETE"]
    if not set(metrics) <= set(done.columns):      # no trial finished yet (all failed)
        return done.iloc[0:0]
    done = within_constraints(done.dropna(subset=list(metrics)))
    if "duplicate_of" in done:   # a reused result is the same point as its original
        done = done[done["duplicate_of"].isna()]
    if done.empty:
        return done
    keep = pareto_front(done[list(metrics)].to_numpy(dtype=float), directions)
    return done.iloc[keep].sort_values(metrics[-1] if len(metrics) > 1 else metrics[0])


def write_tables(study: optuna.Study, folder: Path, metrics: Sequence[str],
                 directions: Sequence[str]) -> pd.DataFrame:
    """Write trials.csv and pareto.csv atomically; return the front."""
    frame = trials_frame(study)
    front = front_of(frame, metrics, directions)
    atomic_write_text(folder / "trials.csv", as_written(frame).to_csv(index=False))
    atomic_write_text(folder / "pareto.csv", as_written(front).to_csv(index=False))
    return front


def _layer_summary(row: pd.Series, prefix: str, fmt: str) -> str:
    values = [row[c] for c in row.index if c.startswith(prefix) and pd.notna(row[c])]
    return "/".join(fmt.format(v) for v in values)


def headline_figures(row: Mapping[str, Any], metric: str = "accuracy"
                     ) -> list[tuple[str, str]]:
    """(column, value) of the headline metrics recorded in ``row`` (a trial or the dense
    reference), named and formatted as in the front table (``metric``: see ``front_table``)."""
    source = row.get("energy_source")
    sources = [source] if isinstance(source, str) else []
    return [(column_name(key, sources, metric), format_value(key, row[key]))
            for key in headline_metrics()
            if key in row and pd.notna(row[key])]


def format_front(front: pd.DataFrame, metrics: Sequence[str] = (), val_samples: int | None = None,
                 cost: str | None = None) -> str:
    """The front as a fixed-width text table: accuracy, costs (each labelled counted / est / meas),
    layers, bits; plus a column for any objective in ``metrics`` not already shown (and the
    accuracy intervals and noise notes of ``front_table``)."""
    if front.empty:
        return "(no completed trials yet)"
    return front_table(front, metrics, val_samples, cost).to_string(index=False)


def front_table(front: pd.DataFrame, metrics: Sequence[str] = (), val_samples: int | None = None,
                cost: str | None = None, metric: str = "accuracy") -> pd.DataFrame:
    """The front's columns as display strings (the text table, Markdown and the report's table):
    the registry's headline metrics (``trainers.costs.metrics``, e.g. ``MFLOPs``), then any
    objective in ``metrics`` without a headline column, as recorded (``bops(counted)``).

    With ``val_samples`` (the n of ``search.decide.noise``) each accuracy's 95% interval follows
    it (``acc 95% CI``); with ``cost`` too, a last column notes the points whose edge over a
    cheaper one is within that noise (``noise``: ``within noise of #N``). ``metric``: the
    study's selection metric, which the ``accuracy`` column holds (``val_f1_macro``, not
    ``val_acc``, for another).
    """
    sources = front.get("energy_source", pd.Series(dtype=str)).dropna()
    table = pd.DataFrame({"trial": front["trial"].astype(int)})
    selection = metric
    for metric in headline_metrics():
        if metric in front:
            table[column_name(metric, sources, selection)] = front[metric].map(
                lambda value, name=metric: format_value(name, value))
        if metric == "accuracy" and val_samples and metric in front:
            table[INTERVAL_COLUMN] = interval_texts(front[metric], val_samples)
    for metric in metrics:
        if metric not in headline_metrics() and metric in front:
            table[column_name(metric)] = front[metric].map("{:.4g}".format)
    table["sparsity/layer"] = front.apply(lambda r: _layer_summary(r, SPARSITY_PREFIX, "{:.2f}"),
                                          axis=1)
    table["bits/layer"] = front.apply(lambda r: _layer_summary(r, BITS_PREFIX, "{:.0f}"), axis=1)
    table["criterion"] = front.get("criterion", "")
    if val_samples and cost and "accuracy" in front:
        table[NOISE_COLUMN] = noise_notes(front, cost, val_samples)
    return table


def as_written(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its whole-number columns written as integers: a column that some trials
    lack (``retry_of``, ``duplicate_of``, ``pruned_rung``) is float in pandas and read 7.0."""
    out = frame.copy()
    for column in INTEGER_ATTRS:
        if column in out and out[column].dtype.kind == "f":
            values = out[column].dropna()
            if (values == values.round()).all():
                out[column] = out[column].astype("Int64")
    return out


# Trial attributes that hold whole numbers (trial numbers, epochs, rungs).
INTEGER_ATTRS = ("retry_of", "duplicate_of", "pruned_rung", "finetune_epochs_done")
