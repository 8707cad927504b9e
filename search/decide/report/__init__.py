"""The study report: PNG figures, interactive plotly figures and one ``index.html``.

``write_report(result)`` writes ``<study>/report/`` (or ``folder``):

- ``front_accuracy_flops.png`` / ``front_accuracy_energy.png``: the Pareto front, dense reference and
  picked models marked (interactive versions in ``index.html``);
- ``hypervolume.png``: hypervolume of the completed trials after each trial;
- ``layers_trial<N>.png`` per picked model, and ``compression.png`` (dense vs picked);
- ``importances.png``: Optuna parameter importances per objective;
- ``sensitivity.png`` when ``sparsity-search sensitivity`` has been run;
- ``index.html``: everything on one page, plotly.js inlined (opens offline).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from search.decide.pick import PickSettings
from search.decide.report.data import ReportData, gather
from search.decide.report.interactive import front_figure, hypervolume_figure
from search.decide.report.page import render_index
from search.decide.report.static import (
    compression_png,
    front_png,
    hypervolume_png,
    importances_png,
    layers_png,
    sensitivity_png,
)
from search.run.preflight import check_not_foreign, check_writable_folder
from trainers.checkpoint import atomic_write_text

__all__ = ["ReportData", "gather", "write_report"]


def write_report(result: Any, *, picks: Sequence[PickSettings] = (), trials: Sequence[int] = (),
                 folder: str | Path | None = None) -> Path:
    """Write the report of ``result`` (a ``StudyResult``); return the path of ``index.html``."""
    out = Path(folder) if folder else result.config.study_dir / "report"
    check_writable_folder(out, "--to" if folder else "output_dir", "the report folder",
                          create=False)
    if folder:
        check_not_foreign(out, "--to", "report", "index.html", "Sparsity search report")
    data = gather(result, picks, trials)
    out.mkdir(parents=True, exist_ok=True)
    figures, pngs = {}, {}
    for key, x, colour in (("front_flops", "flops", "energy_uj"),
                           ("front_energy", "energy_uj", "size_bytes")):
        if not data.done.empty and x in data.done and colour in data.done:
            name = f"front_accuracy_{x.split('_')[0]}.png"
            pngs[key] = front_png(data, x, colour, out / name).name
            figures[key] = front_figure(data, x, colour)
    pngs["hypervolume"] = hypervolume_png(data, out / "hypervolume.png").name
    figures["hypervolume"] = hypervolume_figure(data)
    for pick in data.picks:
        pngs[f"layers_{pick.trial}"] = layers_png(pick, out / f"layers_trial{pick.trial}.png").name
    if data.picks and data.dense:
        pngs["compression"] = compression_png(data, out / "compression.png").name
    if data.importances:
        pngs["importances"] = importances_png(data.importances, out / "importances.png").name
    if data.sensitivity is not None:
        pngs["sensitivity"] = sensitivity_png(data.sensitivity, out / "sensitivity.png").name
    index = out / "index.html"
    atomic_write_text(index, render_index(data, figures, pngs, out))
    return index
