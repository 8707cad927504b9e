"""The Pareto front rendered as a table, CSV, JSON or Markdown, sorted by any recorded metric.

The printed forms (table, Markdown) show each accuracy with its 95% interval and, by default,
only the useful part of the front (``search.decide.display``), saying so in a title line. CSV
and JSON hold every point.
"""
from __future__ import annotations

import json
from typing import Sequence

import pandas as pd

from search.decide.display import FrontDisplay
from search.decide.noise import NOISE_COLUMN
from search.decide.pick import direction_of
from search.decide.tables import front_table
from search.pareto import MINIMIZE
from search.schema import ConfigError
from spaces.plain import jsonable

FORMATS = ("table", "csv", "json", "markdown")


def sort_front(front: pd.DataFrame, metric: str | None, metrics: Sequence[str],
               directions: Sequence[str]) -> pd.DataFrame:
    """Best first in ``metric`` (its objective direction; accuracy descending, costs ascending)."""
    if metric is None or front.empty:
        return front
    if metric not in front:
        numeric = sorted(c for c in front.columns if pd.api.types.is_numeric_dtype(front[c]))
        raise ConfigError(f"--sort must be a recorded metric, one of {numeric}, got '{metric}'")
    ascending = direction_of(metric, metrics, directions) == MINIMIZE
    return front.sort_values([metric, "trial"], ascending=[ascending, True], kind="stable")


def markdown_table(table: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (pandas' ``to_markdown`` needs the optional tabulate)."""
    def cell(value: object) -> str:
        return str(value).replace("|", "\\|")

    header = "| " + " | ".join(cell(c) for c in table.columns) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    rows = ["| " + " | ".join(cell(v) for v in row) + " |"
            for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


def shown_part(front: pd.DataFrame, display: FrontDisplay) -> tuple[pd.Series, str]:
    """Which points the printed forms show, and the title line saying so ("" with no floor)."""
    threshold = display.threshold
    if threshold is None or front.empty or "accuracy" not in front:
        return pd.Series(True, index=front.index), ""
    shown = front["accuracy"].astype(float) >= threshold - 1e-12
    floor = f"{display.floor:.2f}" if round(display.floor, 2) == display.floor else \
        f"{display.floor:g}"
    title = (f"{int(shown.sum())} of {len(front)} front points shown: {display.metric} >= "
             f"{threshold:.4f} (dense {display.dense_accuracy:.4f} - {floor}); "
             f"--all shows every point")
    return shown, title


def render_front(front: pd.DataFrame, fmt: str,
                 display: FrontDisplay | Sequence[str] = ()) -> str:
    """``table`` and ``markdown``: headline columns (plus any objective of the display's metrics
    not among them), the points above the display floor under a title line saying so;
    ``csv`` and ``json``: every column and every point. ``display`` may be the metrics alone
    (no intervals, no floor)."""
    if not isinstance(display, FrontDisplay):
        display = FrontDisplay(tuple(display), floor=None)
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {list(FORMATS)}, got '{fmt}'")
    if fmt == "csv":
        return front.to_csv(index=False).rstrip("\n")
    if fmt == "json":
        records = [{k: jsonable(v) for k, v in row.items()}
                   for row in front.to_dict(orient="records")]
        return json.dumps(records, indent=2)
    if front.empty:
        return "(no completed trials yet)"
    table = front_table(front, display.metrics, display.val_samples, display.cost,
                        display.metric)
    shown, title = shown_part(front, display)
    table = table[shown.to_numpy()]
    if NOISE_COLUMN in table:   # a note naming a point the floor hides says so
        visible = {f"#{trial}" for trial in table["trial"]}
        table[NOISE_COLUMN] = [note + " (below the floor)" if note and note.rsplit(" ", 1)[-1]
                               not in visible else note for note in table[NOISE_COLUMN]]
    if table.empty:
        text = "(no front point reaches the floor)"
    else:
        text = table.to_string(index=False) if fmt == "table" else markdown_table(table)
    return f"{title}\n\n{text}" if title else text
