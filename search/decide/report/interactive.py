"""Interactive figures (plotly): the fronts and the hypervolume, with per-trial hover details."""
from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
import plotly.graph_objects as go

from search.decide.report.static import axis
from search.decide.tables import LAYER_COLUMNS, front_table

if TYPE_CHECKING:
    from search.decide.report.data import ReportData


def _hover(frame: pd.DataFrame, val_samples: int | None = None,
           metric: str = "accuracy") -> list[str]:
    """Per trial: its headline figures (as in the front table, with the accuracy's interval),
    three to a line, and layers."""
    if frame.empty:
        return []
    table = front_table(frame, val_samples=val_samples, metric=metric)
    figures = [c for c in table.columns if c not in LAYER_COLUMNS]
    texts = []
    for _, r in table.iterrows():
        cells = [f"{c} {r[c]}" for c in figures]
        lines = [" · ".join(cells[i:i + 3]) for i in range(0, len(cells), 3)]
        texts.append("<br>".join([f"trial {r['trial']}", *lines, f"sparsity {r['sparsity/layer']}",
                                  f"bits {r['bits/layer']} · {r['criterion']}"]))
    return texts


def front_figure(data: "ReportData", x: str, colour: str) -> go.Figure:
    x_label, x_scale = axis(x)
    c_label, c_scale = axis(colour)
    figure = go.Figure()
    done, front = data.done, data.front
    if not done.empty:
        figure.add_trace(go.Scatter(
            x=done[x] / x_scale, y=done["accuracy"], mode="markers", name="all trials",
            marker=dict(color="#bbbbbb", size=6),
            text=_hover(done, data.val_samples, data.metric),
            hoverinfo="text"))
    if not front.empty:
        ordered = front.sort_values(x)
        figure.add_trace(go.Scatter(
            x=ordered[x] / x_scale, y=ordered["accuracy"], mode="markers+lines",
            name="Pareto front", line=dict(shape="hv", color="#888888", width=1),
            marker=dict(size=10, color=ordered[colour] / c_scale, colorscale="Viridis",
                        showscale=True, colorbar=dict(title=c_label.split(",")[0]),
                        line=dict(color="black", width=0.5)),
            text=_hover(ordered, data.val_samples, data.metric), hoverinfo="text"))
    if data.dense and x in data.dense:
        figure.add_trace(go.Scatter(
            x=[data.dense[x] / x_scale], y=[data.dense["accuracy"]], mode="markers",
            name="dense reference", marker=dict(symbol="star", size=16, color="black"),
            hovertext=[f"dense reference: val acc {data.dense['accuracy']:.4f}"],
            hoverinfo="text"))
    for pick in data.picks:
        figure.add_trace(go.Scatter(
            x=[pick.row[x] / x_scale], y=[pick.row["accuracy"]], mode="markers+text",
            name=f"picked: trial {pick.trial}", text=[f"trial {pick.trial}"],
            textposition="bottom right",
            marker=dict(symbol="circle-open", size=20, color="#d62728", line=dict(width=2))))
    values = done[x] if not done.empty else pd.Series(dtype=float)
    log_x = bool(len(values) and values.min() > 0 and values.max() / values.min() > 20)
    figure.update_layout(
        title=f"{data.metric.capitalize()} vs {x_label.split(',')[0]}", xaxis_title=x_label,
        yaxis_title=f"validation {data.metric}", xaxis_type="log" if log_x else "linear",
        template="plotly_white", height=460, margin=dict(l=60, r=20, t=50, b=50),
        legend=dict(orientation="h", y=-0.2))
    return figure


def hypervolume_figure(data: "ReportData") -> go.Figure:
    figure = go.Figure(go.Scatter(
        x=data.history["trial"], y=data.history["hypervolume"], mode="lines+markers",
        line=dict(shape="hv"), name="hypervolume"))
    figure.update_layout(title="Hypervolume of the completed trials so far", xaxis_title="trial",
                         yaxis_title="hypervolume (normalised)", template="plotly_white",
                         height=320, margin=dict(l=60, r=20, t=50, b=40))
    return figure
