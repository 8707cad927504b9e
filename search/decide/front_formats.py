"""The Pareto front rendered as a table, CSV, JSON or Markdown, sorted by any recorded metric."""
from __future__ import annotations

import json
from typing import Sequence

import pandas as pd

from search.decide.pick import direction_of
from search.decide.tables import format_front, front_table
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


def render_front(front: pd.DataFrame, fmt: str, metrics: Sequence[str] = ()) -> str:
    """``table`` and ``markdown``: headline columns (plus any objective in ``metrics`` not among
    them); ``csv`` and ``json``: every column."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {list(FORMATS)}, got '{fmt}'")
    if fmt == "table":
        return format_front(front, metrics)
    if fmt == "csv":
        return front.to_csv(index=False).rstrip("\n")
    if fmt == "json":
        records = [{k: jsonable(v) for k, v in row.items()}
                   for row in front.to_dict(orient="records")]
        return json.dumps(records, indent=2)
    if front.empty:
        return "(no completed trials yet)"
    return markdown_table(front_table(front, metrics))
