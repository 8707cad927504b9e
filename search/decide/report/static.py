"""PNG figures (matplotlib, object API: no global backend or pyplot state is touched)."""
from __future__ import annotations

import io
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from trainers.checkpoint import atomic_write
from trainers.costs.metrics import METRICS

if TYPE_CHECKING:
    from search.decide.report.data import Picked, ReportData
    from search.run.sensitivity import SensitivityResult

# The costs compared before (dense) and after (picked models) in compression.png.
COMPRESSION_PANELS = ("params_nonzero", "size_bytes", "flops", "energy_uj")
PICK_COLOUR = "#d62728"
DENSE_COLOUR = "black"


def axis(metric: str) -> tuple[str, float]:
    """(axis label, scale divisor) of a metric, from the registry (trainers.costs.metrics)."""
    info = METRICS.get(metric)
    return (info.label or metric, info.scale) if info else (metric, 1.0)


def save_png(figure: Figure, path: Path) -> Path:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(buffer.getvalue()))
    return path


def front_png(data: "ReportData", x: str, colour: str, path: Path) -> Path:
    """Accuracy vs ``x``: all trials faint, the front coloured by ``colour``, dense and picks marked."""
    figure = Figure(figsize=(7.5, 4.8))
    ax = figure.subplots()
    x_label, x_scale = axis(x)
    c_label, c_scale = axis(colour)
    done, front = data.done, data.front
    if not done.empty:
        ax.scatter(done[x] / x_scale, done["accuracy"], s=14, c="#bbbbbb", label="all trials",
                   zorder=1)
    if not front.empty:
        ordered = front.sort_values(x)
        ax.step(ordered[x] / x_scale, ordered["accuracy"], where="post", color="#888888",
                lw=0.8, zorder=2)
        points = ax.scatter(front[x] / x_scale, front["accuracy"], s=42,
                            c=front[colour] / c_scale, cmap="viridis", edgecolors="black",
                            linewidths=0.4, label="Pareto front", zorder=3)
        figure.colorbar(points, ax=ax, label=c_label)
    if data.dense and x in data.dense:
        ax.scatter([data.dense[x] / x_scale], [data.dense["accuracy"]], marker="*", s=220,
                   c=DENSE_COLOUR, label="dense reference", zorder=4)
    for i, pick in enumerate(data.picks):
        ax.scatter([pick.row[x] / x_scale], [pick.row["accuracy"]], s=160, facecolors="none",
                   edgecolors=PICK_COLOUR, linewidths=2, zorder=5,
                   label="picked" if i == 0 else None)
        ax.annotate(f"trial {pick.trial}", (pick.row[x] / x_scale, pick.row["accuracy"]),
                    textcoords="offset points", xytext=(8, -12), color=PICK_COLOUR)
    values = done[x] if not done.empty else pd.Series(dtype=float)
    if len(values) and values.min() > 0 and values.max() / values.min() > 20:
        ax.set_xscale("log")
    ax.set_xlabel(x_label)
    ax.set_ylabel(f"validation {data.metric}")
    ax.set_title(f"Study '{data.study}': {data.metric} vs {x_label.split(',')[0]}")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return save_png(figure, path)


def hypervolume_png(data: "ReportData", path: Path) -> Path:
    figure = Figure(figsize=(7.5, 3.6))
    ax = figure.subplots()
    if not data.history.empty:
        ax.step(data.history["trial"], data.history["hypervolume"], where="post", color="#1f77b4")
        ax.scatter(data.history["trial"], data.history["hypervolume"], s=8, color="#1f77b4")
    ax.set_xlabel("trial")
    ax.set_ylabel("hypervolume (normalised)")
    ax.set_title("Hypervolume of the completed trials so far (reference: accuracy 0, "
                 "costs 1.1 x dense)", fontsize=10)
    ax.grid(alpha=0.3)
    return save_png(figure, path)


def layers_png(pick: "Picked", path: Path) -> Path:
    """Per-layer sparsity and bits of one picked model, side by side."""
    sparsity, bits = pick.sparsity, pick.bits
    names = list(dict.fromkeys([*sparsity, *bits]))
    figure = Figure(figsize=(7.5, 3.2 + 0.12 * len(names)))
    left, right = figure.subplots(1, 2, sharey=True)
    y = np.arange(len(names))
    left.barh(y, [sparsity.get(n, 0.0) for n in names], color="#1f77b4")
    left.set_xlim(0, 1)
    left.set_xlabel("sparsity (fraction removed)")
    left.set_yticks(y, names)
    left.invert_yaxis()
    right.barh(y, [bits.get(n, 32) for n in names], color="#ff7f0e")
    right.set_xscale("log", base=2)
    right.set_xticks([2, 4, 8, 16, 32], ["2", "4", "8", "16", "32"])
    right.set_xlabel("weight bits")
    for ax in (left, right):
        ax.grid(axis="x", alpha=0.3)
    figure.suptitle(f"Trial {pick.trial}: per-layer sparsity and bit-width")
    return save_png(figure, path)


def compression_png(data: "ReportData", path: Path) -> Path:
    """Dense reference vs each picked model: nonzero parameters, size, FLOPs, energy."""
    panels = [(key, textwrap.fill(axis(key)[0], 24), axis(key)[1]) for key in COMPRESSION_PANELS]
    labels = ["dense"] + [f"trial {p.trial}" for p in data.picks]
    figure = Figure(figsize=(9, 3.0), layout="constrained")
    axes = figure.subplots(1, len(panels))
    for ax, (key, title, scale) in zip(axes, panels):
        values = [data.dense.get(key, np.nan) / scale] + [p.row.get(key, np.nan) / scale
                                                           for p in data.picks]
        ax.bar(range(len(values)), values, color=["#555555"] + ["#2ca02c"] * len(data.picks))
        ax.set_xticks(range(len(values)), labels, rotation=30, ha="right", fontsize=8)
        ax.set_title(title, fontsize=9)
        for i, value in enumerate(values):
            if np.isfinite(value):
                ax.annotate(f"{value:.3g}", (i, value), ha="center", va="bottom", fontsize=7)
    figure.suptitle("Before (dense) and after (picked models)")
    return save_png(figure, path)


def importances_png(importances: dict[str, dict[str, float]], path: Path) -> Path:
    params = sorted({p for values in importances.values() for p in values},
                    key=lambda p: -max(v.get(p, 0.0) for v in importances.values()))
    figure = Figure(figsize=(7.5, 1.5 + 0.28 * len(params)))
    ax = figure.subplots()
    height = 0.8 / max(1, len(importances))
    y = np.arange(len(params))
    for i, (metric, values) in enumerate(importances.items()):
        ax.barh(y + i * height, [values.get(p, 0.0) for p in params], height=height,
                label=axis(metric)[0].split(",")[0].split("(")[0].strip())
    ax.set_yticks(y + height * (len(importances) - 1) / 2, params, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("importance (fANOVA, sums to 1 per objective)")
    ax.legend(fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    ax.set_title("Which search dimensions matter")
    return save_png(figure, path)


def sensitivity_png(result: "SensitivityResult", path: Path,
                    layers: Sequence[str] | None = None) -> Path:
    """Validation accuracy vs sparsity, one line per layer pruned alone; dense as a dashed line."""
    figure = Figure(figsize=(7.5, 4.2))
    ax = figure.subplots()
    for layer in layers or result.layers or sorted(result.accuracy["layer"].unique()):
        rows = result.accuracy[result.accuracy["layer"] == layer].sort_values("sparsity")
        ax.plot(rows["sparsity"], rows["accuracy"], marker="o", ms=3, label=layer)
    ax.axhline(result.dense_accuracy, ls="--", color="black", lw=0.8, label="dense")
    ax.set_xlabel("sparsity of the one pruned layer")
    ax.set_ylabel("validation accuracy (no fine-tuning)")
    ax.set_title(f"Layer sensitivity ({result.criterion})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    return save_png(figure, path)
