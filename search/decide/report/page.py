"""``index.html``: one self-contained page (plotly.js inlined, no network) tying the report together."""
from __future__ import annotations

import datetime as _dt
import html
import os
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import pandas as pd
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from search.decide.noise import INTERVAL_COLUMN, interval_texts
from search.decide.status import trial_counts
from search.decide.tables import front_table, headline_figures
from search.objectives import short_direction
from trainers.costs.metrics import METRICS, format_value

if TYPE_CHECKING:
    from search.decide.report.data import Picked, ReportData

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto;
       max-width: 1100px; padding: 1.5em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
.meta, .why, .note { color: #555; } .note { font-style: italic; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; height: auto; border: 1px solid #eee; margin: 0.3em 0; }
nav a { margin-right: 1em; } .files a { margin-right: 1em; }
"""


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG header: explicit sizes keep the layout still while images load."""
    with open(path, "rb") as handle:
        head = handle.read(24)
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def _link(study: Path | None, folder: Path, name: str) -> str:
    """The study folder's file ``name`` as seen from the report ``folder`` (``--to`` anywhere)."""
    if study is None:
        return f"../{name}"
    return Path(os.path.relpath(Path(study).resolve() / name, Path(folder).resolve())).as_posix()


def _img(folder: Path, name: str, alt: str) -> str:
    width, height = png_size(folder / name)
    return (f'<img src="{html.escape(name)}" width="{width}" height="{height}" '
            f'alt="{html.escape(alt)}">')


def _table(rows: Sequence[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _frame_table(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, escape=True, border=0)


def _figure(figure: go.Figure, div_id: str) -> str:
    return figure.to_html(full_html=False, include_plotlyjs=False, div_id=f"figure-{div_id}",
                          config={"displaylogo": False, "responsive": True})


def _status_section(data: "ReportData") -> str:
    s = data.status
    dense = data.dense
    rows = [
        ("trials", trial_counts(s)),
        ("budget", f"{s.budget} trials, {s.budget_left} left"),
        ("time", f"{s.trial_seconds:.1f} s in trials, {s.wall_seconds:.1f} s elapsed"),
        ("objectives", ", ".join(f"{m} ({short_direction(d)})"
                                 for m, d in zip(data.metrics, data.directions))),
        ("front", f"{s.front_size} trials"),
        ("hypervolume", f"{s.hypervolume:.4f}"),
    ]
    if data.val_samples:
        rows.append(("validation samples", f"{data.val_samples:,} (accuracy intervals: 95% "
                                           "Wilson score)"))
    if dense:
        rows.append(("dense reference", ", ".join(
            f"{c} {v}" for c, v in headline_figures(dense, data.metric))))
    return f'<section id="status"><h2>Status</h2>{_table(rows)}</section>'


def _pick_section(pick: "Picked", dense: dict, folder: Path, png: str,
                  val_samples: int | None = None, metric: str = "accuracy",
                  model_source: str = "config") -> str:
    def shown(key: str, value: float | None) -> str:
        return "-" if value is None or pd.isna(value) else format_value(key, value)

    def interval(value: float | None) -> str:
        if value is None or pd.isna(value) or not val_samples:
            return "-"
        return interval_texts(pd.Series([float(value)]), val_samples).iloc[0]

    rows = []
    for key, info in METRICS.items():      # every recorded metric, labelled by the registry
        before, after = shown(key, dense.get(key)), shown(key, pick.row.get(key))
        if (before, after) != ("-", "-"):
            label = info.label or key
            if key in ("accuracy", "test_accuracy") and metric != "accuracy":   # e.g. f1_macro
                label = label.replace("accuracy", metric)
            rows.append(f"<tr><td>{html.escape(label)}</td><td>{before}</td>"
                        f"<td>{after}</td></tr>")
        if key == "accuracy" and val_samples:
            rows.append(f"<tr><td>{INTERVAL_COLUMN}</td><td>{interval(dense.get(key))}</td>"
                        f"<td>{interval(pick.row.get(key))}</td></tr>")
    table = ("<table><tr><th>metric</th><th>dense</th><th>trial "
             f"{pick.trial}</th></tr>{''.join(rows)}</table>")
    export = '<p class="note">not exported yet: <code>sparsity-search export ' \
             f'{pick.trial}</code></p>' if not model_source.startswith("python:") else (
                 f'<p class="note">not exported yet: the model came from Python '
                 f'({html.escape(model_source)}), so export it from Python: '
                 f'<code>result.export({pick.trial})</code> with the study\'s model and data</p>')
    if pick.export:
        repro = pick.export.get("reproduction", {})
        export = (f'<p>Exported to <code>exports/{pick.trial}/</code>: re-evaluated validation '
                  f'accuracy {repro.get("exported_accuracy", float("nan")):.4f} (recorded '
                  f'{repro.get("recorded_accuracy", float("nan")):.4f}); '
                  f'{pick.export["params"]["exported_nonzero"]:,} nonzero of '
                  f'{pick.export["params"]["exported_total"]:,} parameters '
                  f'(dense {pick.export["params"]["dense_total"]:,}).</p>')
    return (f'<section class="pick" id="pick-{pick.trial}"><h3>Trial {pick.trial}</h3>'
            f'<p class="why">{html.escape(pick.reason)}</p>{table}{export}'
            f'{_img(folder, png, f"per-layer sparsity and bits of trial {pick.trial}")}</section>')


def render_index(data: "ReportData", figures: dict[str, go.Figure], pngs: dict[str, str],
                 folder: Path) -> str:
    """The page. ``figures``: interactive figures by id; ``pngs``: file names (in ``folder``) by id."""
    sections = [_status_section(data)]
    front_parts = []
    for key in ("front_flops", "front_energy"):
        if key in figures:
            front_parts.append(_figure(figures[key], key))
            front_parts.append(f'<p class="files">static: <a href="{pngs[key]}">{pngs[key]}</a></p>')
    sections.append('<section id="front"><h2>Pareto front</h2><p class="meta">Each point is a '
                    'trial; the front is coloured by the third quantity; the star is the dense '
                    'reference; red rings are the picked models. FLOPs are effective '
                    '(sparsity-aware), energy is an analytic estimate.</p>'
                    + "".join(front_parts) + "</section>")
    picks = "".join(_pick_section(p, data.dense, folder, pngs[f"layers_{p.trial}"],
                                  data.val_samples, data.metric, data.model_source)
                    for p in data.picks)
    if data.picks and "compression" in pngs:
        picks += _img(folder, pngs["compression"], "before and after")
    notes = "".join(f'<p class="note">{html.escape(n)}</p>' for n in data.notes)
    sections.append(f'<section id="picks"><h2>Picked models</h2>{notes}'
                    f'{picks or "<p class=note>no model picked</p>"}</section>')
    if "hypervolume" in figures:
        sections.append('<section id="hypervolume"><h2>Hypervolume over trials</h2>'
                        '<p class="meta">Objectives normalised: accuracy as is (reference 0), '
                        'costs divided by the dense reference (reference 1.1).</p>'
                        + _figure(figures["hypervolume"], "hypervolume")
                        + f'<p class="files">static: <a href="{pngs["hypervolume"]}">'
                          f'{pngs["hypervolume"]}</a></p></section>')
    if "importances" in pngs:
        body = _img(folder, pngs["importances"], "parameter importances")
    else:
        body = f'<p class="note">{html.escape(data.importance_note or "not available")}</p>'
    sections.append(f'<section id="importances"><h2>Parameter importances</h2>{body}</section>')
    if "sensitivity" in pngs:
        sections.append('<section id="sensitivity"><h2>Layer sensitivity</h2>'
                        + _img(folder, pngs["sensitivity"], "layer sensitivity") + "</section>")
    if not data.front.empty:
        sections.append('<section id="front-table"><h2>Front as a table</h2>'
                        + _frame_table(front_table(data.front, data.metrics, data.val_samples,
                                                   data.cost, data.metric)) + "</section>")
    tables = " ".join(f'<a href="{_link(data.folder, folder, name)}">{name}</a>'
                      for name in ("trials.csv", "pareto.csv"))
    sections.append('<section id="files"><h2>Files</h2><p class="files">' + tables + " "
                    + " ".join(f'<a href="{name}">{name}</a>' for name in sorted(pngs.values()))
                    + "</p></section>")
    nav = "".join(f'<a href="#{i}">{t}</a>' for i, t in (
        ("status", "status"), ("front", "front"), ("picks", "picked models"),
        ("hypervolume", "hypervolume"), ("importances", "importances")))
    stamp = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    title = f"Sparsity search report: study '{data.study}'"
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style>"
            f'<script type="text/javascript">{get_plotlyjs()}</script></head><body>'
            f"<h1>{html.escape(title)}</h1><p class=\"meta\">written {stamp}</p><nav>{nav}</nav>"
            + "".join(sections) + "</body></html>\n")
