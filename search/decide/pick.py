"""Pick one trial from a study: hard constraints first, then a stated preference or the knee.

The rule, printed with every pick:
1. keep completed trials that meet every constraint (``--max-flops`` etc.);
2. of those, keep the ones no other feasible trial dominates on the study's objectives;
3. choose the knee of that set (``--knee``) or the best in the preferred metric (``--prefer``;
   ties broken by the objectives in order). Without ``--prefer`` the preference is validation
   accuracy, except when the only constraint is an accuracy floor: then it is the first minimised
   objective (the cheapest model that is accurate enough).

Selection reads validation accuracy (``accuracy``); the test accuracy is shown, never used.
With ``accuracy_bound="lower"`` the accuracy floor is checked against the lower end of each
accuracy's 95% binomial interval over the validation samples (``search.decide.noise``). With
``reevaluated`` both read each trial's re-evaluated mean instead of the search's own figure
(``search.decide.reevaluate``), and the trials not re-evaluated are left out.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import numpy as np
import pandas as pd

from search.decide.constraints import Constraint, PickSettings
from search.decide.noise import wilson_interval
from search.decide.tables import headline_figures, within_constraints
from search.objectives import objective_metrics
from search.pareto import MAXIMIZE, MINIMIZE, pareto_front, to_minimization
from search.schema import ConfigError
from trainers.costs.metrics import METRICS, direction, headline_metrics

__all__ = ["Constraint", "PickResult", "PickSettings", "direction_of", "format_pick",
           "knee_index", "pick_trial"]


@dataclass
class PickResult:
    """The chosen trial (``None`` when nothing meets the constraints) and why."""

    trial: int | None
    row: dict[str, Any] | None
    reason: str
    feasible: int
    candidates: int
    nearest: pd.DataFrame = field(default_factory=pd.DataFrame)

    def __bool__(self) -> bool:
        return self.trial is not None


def direction_of(metric: str, metrics: Sequence[str], directions: Sequence[str]) -> str:
    """The study's direction of an objective; the registry's for any other metric."""
    if metric in metrics:
        return directions[list(metrics).index(metric)]
    return direction(metric)


def knee_index(values: np.ndarray, directions: Sequence[str]) -> int:
    """Row of ``values`` closest to the ideal point, with quality and cost weighed equally.

    Each objective is scaled to [0, 1] over the given rows (0 = best; an objective with one value
    everywhere counts 0). The maximised objectives are averaged into one "loss of quality" and the
    minimised ones into one "cost", so that several correlated costs (FLOPs and energy) do not
    outvote accuracy; the knee minimises the Euclidean distance of (quality loss, cost) to (0, 0).
    Ties go to the first row.
    """
    points = to_minimization(values, directions)
    low, high = points.min(axis=0), points.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    scaled = (points - low) / span
    groups = [np.array([d == MAXIMIZE for d in directions]),
              np.array([d != MAXIMIZE for d in directions])]
    axes = [scaled[:, group].mean(axis=1) for group in groups if group.any()]
    return int(np.argmin(np.linalg.norm(np.stack(axes, axis=1), axis=1)))


def default_preference(settings: PickSettings, metrics: Sequence[str],
                       directions: Sequence[str]) -> str:
    if settings.prefer:
        return settings.prefer
    constraints = settings.constraints()
    if constraints and all(c.metric == "accuracy" for c in constraints):
        for metric, way in zip(metrics, directions):
            if way == MINIMIZE:
                return metric
    return "accuracy"


def pick_trial(frame: pd.DataFrame, settings: PickSettings, metrics: Sequence[str],
               directions: Sequence[str], val_samples: int | None = None,
               reevaluation: pd.DataFrame | None = None, metric: str = "accuracy"
               ) -> PickResult:
    """Apply ``settings`` to a ``trials_frame`` (see the module docstring for the rule);
    ``val_samples``: the n of the accuracy intervals (needed by ``accuracy_bound="lower"``);
    ``reevaluation``: the study's re-evaluation summary (needed by ``reevaluated``); ``metric``:
    the study's selection metric, what the accuracy column holds (named in the reason)."""
    metrics, directions = list(metrics), list(directions)
    note = ""
    if settings.reevaluated:
        frame, note = on_reevaluated(frame, reevaluation)
    needed = set(metrics) | {c.metric for c in settings.constraints()}
    if frame.empty or "state" not in frame or "COMPLETE" not in set(frame["state"]):
        return PickResult(None, None, "the study has no completed trials yet", 0, 0)
    completed = frame[frame["state"] == "COMPLETE"]
    unrecorded = sorted(m for m in needed - set(metrics)
                        if m not in completed or completed[m].isna().all())
    if unrecorded:     # a bound on what this study never measured (cost.measure_latency: false)
        return PickResult(None, None, f"no completed trial of this study records "
                          f"{', '.join(unrecorded)}, which a bound names (was it measured? "
                          f"see the cost: section of its config)", 0, 0)
    done = completed.dropna(subset=sorted(needed))
    if done.empty:
        return PickResult(None, None, "the study has no completed trials yet", 0, 0)
    if "duplicate_of" in done:   # a reused result is the same model as its original: one point
        done = done[done["duplicate_of"].isna()]
    inside = within_constraints(done)
    if len(inside) < len(done):
        note += (f" ({len(done) - len(inside)} completed trial(s) outside the study's "
                 f"search.constraints left out)")
        if inside.empty:
            return PickResult(None, None, "no completed trial meets the study's "
                              "search.constraints" + note, 0, len(done))
        done = inside
    constraints = settings.constraints()
    if settings.accuracy_bound == "lower":
        done, constraints = on_lower_bound(done, constraints, val_samples)
    ok = pd.Series(True, index=done.index)
    for constraint in constraints:
        ok &= constraint.holds(done[constraint.metric].astype(float))
    feasible = done[ok]
    if feasible.empty:
        return PickResult(None, None, _nothing_fits(constraints, len(done)) + note, 0, len(done),
                          nearest_trials(done, constraints))
    front = feasible.iloc[pareto_front(feasible[metrics].to_numpy(dtype=float), directions)]
    if settings.knee:
        chosen = front.iloc[knee_index(front[metrics].to_numpy(dtype=float), directions)]
        weighing = ("quality and cost weighed equally" if len(set(directions)) > 1 else
                    "every objective weighed equally")   # e.g. accuracy alone: no cost side
        rule = (f"the knee of the {len(front)} non-dominated feasible trials (closest to the ideal "
                f"point, {', '.join(metrics)} scaled to [0, 1], {weighing})")
    else:
        prefer = default_preference(settings, metrics, directions)
        allowed = sorted(set(metrics) | set(objective_metrics()))
        if prefer not in allowed:
            raise ConfigError(f"prefer must be an objective or a metric a study may optimise, "
                              f"one of {allowed} (selection never reads the test split), "
                              f"got '{prefer}'")
        if prefer not in front:
            raise ConfigError(f"prefer must be a recorded metric, one of "
                              f"{sorted(c for c in front.columns if c in _numeric(front))}, "
                              f"got '{prefer}'")
        keys = [prefer] + [m for m in metrics if m != prefer]
        ranked = front.sort_values(
            keys, ascending=[direction_of(k, metrics, directions) == MINIMIZE for k in keys],
            kind="stable")
        chosen = ranked.iloc[0]
        best = "highest" if direction_of(prefer, metrics, directions) == MAXIMIZE else "lowest"
        named = metric if prefer == "accuracy" else prefer   # the study's metric, e.g. f1_macro
        rule = f"the {best} {named} of the {len(front)} non-dominated feasible trials"
    met = "; ".join(c.describe(float(chosen[c.metric])) for c in constraints)
    counts = (f"{len(feasible)} of {len(done)} completed trials meet the constraints"
              f"{': ' + met if met else ''}" if constraints else
              f"{len(done)} completed trial{'s' if len(done) != 1 else ''}, no constraint given")
    reason = f"trial {int(chosen['trial'])}: {rule} ({counts}){note}"
    return PickResult(int(chosen["trial"]), chosen.to_dict(), reason, len(feasible), len(done))


LOWER_COLUMN = "accuracy_lower95"
SEARCHED_COLUMN = "searched_accuracy"


def on_reevaluated(frame: pd.DataFrame, summary: pd.DataFrame | None
                   ) -> tuple[pd.DataFrame, str]:
    """The completed trials of ``frame`` that have a re-evaluation, their ``accuracy`` and
    ``test_accuracy`` replaced by its means (the longest fine-tune stored; the search's own
    accuracy kept as ``searched_accuracy``), and the note saying so for the pick's reason."""
    if summary is None or summary.empty:
        raise ConfigError("--reevaluated reads the study's re-evaluation (reevaluation.csv in the "
                          "study folder) and this study has none: run `sparsity-search "
                          "reevaluate` (StudyResult.reevaluate) first, or pick without "
                          "--reevaluated")
    latest = summary.sort_values(["trial", "epochs"]).groupby("trial").tail(1).set_index("trial")
    done = frame[frame["state"] == "COMPLETE"] if "state" in frame else frame.iloc[0:0]
    has = done["trial"].isin(latest.index) if len(done) else pd.Series(dtype=bool)
    kept = done[has].copy()
    if SEARCHED_COLUMN not in kept and "accuracy" in kept:
        kept[SEARCHED_COLUMN] = kept["accuracy"]
    for column in ("accuracy", "test_accuracy"):
        kept[column] = kept["trial"].map(latest[column]).astype(float)
    epochs = sorted({int(e) for e in latest.loc[latest.index.isin(kept["trial"]), "epochs"]})
    note = (f"; accuracy re-evaluated (mean over repeats; fine-tune epochs "
            f"{'/'.join(map(str, epochs))}), {len(done) - len(kept)} completed trial(s) without "
            f"a re-evaluation left out")
    return kept, note


def on_lower_bound(done: pd.DataFrame, constraints: Sequence[Constraint],
                   val_samples: int | None) -> tuple[pd.DataFrame, list[Constraint]]:
    """``done`` with each accuracy's 95% lower bound added, and the accuracy constraints moved
    onto it."""
    if val_samples is None:
        raise ConfigError("--accuracy-bound lower needs the number of validation samples the "
                          "accuracy is a fraction of: this study did not record it (run before "
                          "it was: resume it with `sparsity-search run` to record it) or its "
                          "metric is not such a fraction")
    low, _ = wilson_interval(done["accuracy"].astype(float), val_samples)
    moved = [replace(c, metric=LOWER_COLUMN, shown_as="accuracy 95% lower bound",
                     label=f"{c.label} --accuracy-bound lower")
             if c.metric == "accuracy" else c for c in constraints]
    return done.assign(**{LOWER_COLUMN: low}), moved


def _numeric(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])]


def _nothing_fits(constraints: Sequence[Constraint], total: int) -> str:
    labels = " ".join(c.label for c in constraints)
    return f"no completed trial meets {labels} (of {total} completed trials)"


def nearest_trials(done: pd.DataFrame, constraints: Sequence[Constraint], n: int = 3
                   ) -> pd.DataFrame:
    """The ``n`` trials that miss the constraints by the least total relative amount."""
    total = pd.Series(0.0, index=done.index)
    misses = pd.Series("", index=done.index)
    for constraint in constraints:
        values = done[constraint.metric].astype(float)
        amount = constraint.violation(values)
        total += amount
        text = values.map(constraint.describe).where(amount > 0, "")
        misses = misses.str.cat(text, sep="; ").str.strip("; ")
    table = pd.DataFrame({"trial": done["trial"].astype(int), "violation": total,
                          "misses": misses})
    constrained = {c.metric for c in constraints}
    for column in METRICS:            # the headline metrics and the constrained ones
        if column in done and (column in headline_metrics() or column in constrained):
            table[column] = done[column]
    return table.sort_values(["violation", "trial"]).head(n).reset_index(drop=True)


def format_pick(result: PickResult, metric: str = "accuracy") -> str:
    """The chosen trial's headline numbers and why (``metric``: the study's selection metric,
    which names the accuracy column); or the nearest trials when nothing fits."""
    if result:
        row = result.row or {}
        parts = [f"picked {result.reason}"]
        parts.append("  " + " ".join(f"{c}={v}" for c, v in headline_figures(row, metric)))
        return "\n".join(parts)
    lines = [result.reason]
    if not result.nearest.empty:
        lines.append("nearest trials (smallest total relative miss):")
        for _, near in result.nearest.iterrows():
            lines.append(f"  trial {int(near['trial'])}: misses {near['misses']} "
                         f"(relative miss {near['violation']:.3f})")
    return "\n".join(lines)
