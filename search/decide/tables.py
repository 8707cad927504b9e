"""Tables of a study read from its Optuna storage: trials.csv, pareto.csv, the printed front."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import optuna
import pandas as pd

from search.pareto import pareto_front
from search.run.budget import is_surplus
from spaces.candidate import BITS_PREFIX, SPARSITY_PREFIX
from trainers.checkpoint import atomic_write_text
from trainers.costs.metrics import SHORT_NATURE, metric_nature


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
        if trial.datetime_start and trial.datetime_complete:
            row["duration_s"] = (trial.datetime_complete - trial.datetime_start).total_seconds()
        rows.append(row)
    return pd.DataFrame(rows)


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
    done = done.dropna(subset=list(metrics))
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
    atomic_write_text(folder / "trials.csv", frame.to_csv(index=False))
    atomic_write_text(folder / "pareto.csv", front.to_csv(index=False))
    return front


def _layer_summary(row: pd.Series, prefix: str, fmt: str) -> str:
    values = [row[c] for c in row.index if c.startswith(prefix) and pd.notna(row[c])]
    return "/".join(fmt.format(v) for v in values)


def _train_energy_label(front: pd.DataFrame) -> str:
    sources = sorted(set(front.get("energy_source", pd.Series(dtype=str)).dropna()))
    if len(sources) == 1:
        return f"train_J({SHORT_NATURE[metric_nature('train_energy_j', sources[0])]})"
    return "train_J(" + "/".join(sources) + ")" if sources else "train_J"


def format_front(front: pd.DataFrame, metrics: Sequence[str] = ()) -> str:
    """The front as a fixed-width text table: accuracy, costs (each labelled counted / est / meas),
    layers, bits; plus a column for any objective in ``metrics`` not already shown."""
    if front.empty:
        return "(no completed trials yet)"
    return front_table(front, metrics).to_string(index=False)


def front_table(front: pd.DataFrame, metrics: Sequence[str] = ()) -> pd.DataFrame:
    """The front's columns as display strings (the text table, Markdown and the report's table)."""
    table = pd.DataFrame({
        "trial": front["trial"].astype(int),
        "val_acc": front["accuracy"].map("{:.4f}".format),
        "test_acc": front.get("test_accuracy", pd.Series(np.nan, index=front.index))
                         .map("{:.4f}".format),
        "MFLOPs": (front["flops"] / 1e6).map("{:.3f}".format),
        "energy_uJ(est)": front["energy_uj"].map("{:.3f}".format),
        "size_KB": (front["size_bytes"] / 1024).map("{:.1f}".format),
    })
    if "latency_ms" in front:
        table["latency_ms(meas)"] = front["latency_ms"].map("{:.3f}".format)
    if "train_energy_j" in front:
        table[_train_energy_label(front)] = front["train_energy_j"].map("{:.2f}".format)
    shown = {"accuracy", "flops", "energy_uj", "size_bytes", "latency_ms", "train_energy_j"}
    for metric in metrics:
        if metric not in shown and metric in front:
            label = f"{metric}({SHORT_NATURE[metric_nature(metric)]})"
            table[label] = front[metric].map("{:.4g}".format)
    table["sparsity/layer"] = front.apply(lambda r: _layer_summary(r, SPARSITY_PREFIX, "{:.2f}"),
                                          axis=1)
    table["bits/layer"] = front.apply(lambda r: _layer_summary(r, BITS_PREFIX, "{:.0f}"), axis=1)
    table["criterion"] = front.get("criterion", "")
    return table
