"""Per-layer sensitivity ("weak layer" analysis): how much accuracy each layer loses alone.

The measurement (each prunable layer of the dense reference pruned alone at a grid of sparsities,
evaluated without fine-tuning; weight statistics) is ``trainers.sensitivity``. Here: the study's
side of it. Layers that lose little are where the search can be bold; ``max_sparsity_bounds`` turns
a tolerated accuracy drop into per-layer upper bounds for the search space.

Written to ``<study>/sensitivity/``: ``accuracy.csv`` (layer, sparsity, accuracy, drop),
``weights.csv`` and ``summary.json`` (dense accuracy, criterion, grid); ``sparsity-search
sensitivity`` adds the plot ``sensitivity.png`` (building a study context draws nothing).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import pandas as pd

from search.schema import ConfigError
from trainers.checkpoint import atomic_write_text
from trainers.errors import SetupError

DEFAULT_GRID = (0.25, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98)
FOLDER = "sensitivity"


@dataclass
class SensitivityResult:
    """Accuracy per (layer, sparsity), weight statistics per layer, and the dense accuracy."""

    accuracy: pd.DataFrame          # columns: layer, sparsity, accuracy, drop
    weights: pd.DataFrame           # one row per layer
    dense_accuracy: float
    criterion: str
    grid: tuple[float, ...]
    layers: list[str] = field(default_factory=list)

    def bounds(self, max_drop: float) -> dict[str, float]:
        """Per-layer upper bound on sparsity for a tolerated accuracy drop (see the function)."""
        return max_sparsity_bounds(self.accuracy, max_drop)

    def table(self) -> pd.DataFrame:
        """Layers as rows, sparsities as columns, validation accuracy in the cells (+ stats)."""
        wide = self.accuracy.pivot(index="layer", columns="sparsity", values="accuracy")
        wide = wide.reindex(self.layers or list(wide.index))
        wide.columns = [f"acc@{s:g}" for s in wide.columns]
        stats = self.weights.set_index("layer")[["params", "near_zero_fraction", "l2_norm"]]
        return wide.join(stats).reset_index()


def validate_grid(grid: Sequence[float]) -> tuple[float, ...]:
    values = tuple(sorted({float(s) for s in grid}))
    if not values:
        raise ConfigError("sensitivity grid must list at least one sparsity, got []")
    for value in values:
        if not 0.0 < value < 1.0:
            raise ConfigError(f"sensitivity grid values must be in (0, 1), got {value}")
    return values


def max_sparsity_bounds(accuracy: pd.DataFrame, max_drop: float) -> dict[str, float]:
    """``{layer: s}``: the largest grid sparsity ``s`` such that pruning the layer alone to ``s``
    and to every smaller grid point loses at most ``max_drop`` validation accuracy (absolute,
    e.g. 0.01 = one point). A layer that already loses more at the smallest grid point gets 0.0.

    Without fine-tuning these are conservative: fine-tuning recovers part of the loss.
    """
    if not 0.0 <= max_drop < 1.0:
        raise ConfigError(f"max_drop must be in [0, 1), got {max_drop}")
    bounds: dict[str, float] = {}
    for layer, rows in accuracy.groupby("layer", sort=False):
        bound = 0.0
        for _, row in rows.sort_values("sparsity").iterrows():
            if row["drop"] > max_drop + 1e-12:
                break
            bound = float(row["sparsity"])
        bounds[str(layer)] = bound
    return bounds


def measure_sensitivity(context: Any, *, grid: Sequence[float] = DEFAULT_GRID,
                        criterion: str = "magnitude", granularity: str = "unstructured",
                        seed: int = 0, log: Callable[[str], None] = print) -> SensitivityResult:
    """``trainers.sensitivity.measure_layer_sensitivity`` over a checked grid, as a study's
    result."""
    from trainers.sensitivity import measure_layer_sensitivity

    grid = validate_grid(grid)
    try:
        measured = measure_layer_sensitivity(context, grid=grid, criterion=criterion,
                                  granularity=granularity, seed=seed, log=log)
    except SetupError as exc:
        raise ConfigError(str(exc)) from exc
    return SensitivityResult(measured.accuracy, measured.weights, measured.dense_accuracy,
                             criterion, grid, measured.layers)


def bounds_for_space(study_dir: str | Path, context: Any, space: Any, max_drop: float,
                     log: Callable[[str], None] = print) -> dict[str, float]:
    """Per-layer sparsity upper bounds for ``space.sensitivity_max_drop``: from the study's stored
    analysis, or measured now (the space's first granularity, magnitude when it allows it) and
    stored, so every worker and every resume reads the same bounds."""
    result = load_sensitivity(study_dir)
    if result is None:
        granularity = space.settings.granularities[0]
        allowed = space.criteria_for(granularity)
        criterion = "magnitude" if "magnitude" in allowed else allowed[0]
        result = measure_sensitivity(context, criterion=criterion, granularity=granularity,
                                     seed=space.seed, log=log)
        write_sensitivity(result, study_dir, max_drop)
    missing = sorted(set(space.layer_names) - set(result.layers))
    if missing:
        raise ConfigError(f"space.sensitivity_max_drop: the sensitivity analysis in "
                          f"'{Path(study_dir) / FOLDER}' has no layers {missing} (it was run on "
                          f"another model); delete that folder or run `sparsity-search "
                          f"sensitivity` again")
    bounds = result.bounds(max_drop)
    log(f"sensitivity bounds (drop <= {max_drop:g}, {result.criterion}, from "
        f"{Path(study_dir) / FOLDER}): "
        + ", ".join(f"{name} <= {bounds[name]:g}" for name in space.layer_names))
    return {name: bounds[name] for name in space.layer_names}


def check_replaceable(study_dir: str | Path, grid: Sequence[float], criterion: str) -> None:
    """Refuse to replace the analysis a study's search space was bounded by
    (``space.sensitivity_max_drop`` in its saved config) with one of another grid or criterion:
    the bounds would change and the study could no longer be resumed."""
    from search.config import load_config

    stored, saved = load_sensitivity(study_dir), Path(study_dir) / "config.yaml"
    if stored is None or not saved.is_file():
        return
    max_drop = load_config(saved).space.sensitivity_max_drop
    if max_drop is None or (tuple(stored.grid) == tuple(grid) and stored.criterion == criterion):
        return
    raise ConfigError(
        f"study '{Path(study_dir).name}' bounds its search space by its sensitivity analysis "
        f"(space.sensitivity_max_drop: {max_drop:g}; {stored.criterion}, grid "
        f"{','.join(f'{g:g}' for g in stored.grid)}); another analysis would change those "
        f"bounds and the study could not be resumed. Analyse under a new study name (--study "
        f"NAME with a config), or read the stored one in '{Path(study_dir) / FOLDER}'")


def write_sensitivity(result: SensitivityResult, study_dir: str | Path,
                      max_drop: float | None = None) -> Path:
    """Write the tables and the summary (with bounds when ``max_drop`` is given)."""
    from trainers.sensitivity import NEAR_ZERO

    folder = Path(study_dir) / FOLDER
    atomic_write_text(folder / "accuracy.csv", result.accuracy.to_csv(index=False))
    atomic_write_text(folder / "weights.csv", result.weights.to_csv(index=False))
    summary: dict[str, Any] = {"dense_accuracy": result.dense_accuracy,
                               "criterion": result.criterion, "grid": list(result.grid),
                               "layers": result.layers, "near_zero_threshold": NEAR_ZERO}
    if max_drop is not None:
        summary["max_drop"] = max_drop
        summary["max_sparsity"] = result.bounds(max_drop)
    atomic_write_text(folder / "summary.json", json.dumps(summary, indent=2))
    return folder


def load_sensitivity(study_dir: str | Path) -> SensitivityResult | None:
    """The stored analysis of a study, or ``None`` when ``sensitivity`` has not been run."""
    folder = Path(study_dir) / FOLDER
    if not (folder / "summary.json").is_file():
        return None
    summary = json.loads((folder / "summary.json").read_text())
    return SensitivityResult(pd.read_csv(folder / "accuracy.csv"),
                             pd.read_csv(folder / "weights.csv"), summary["dense_accuracy"],
                             summary["criterion"], tuple(summary["grid"]), summary["layers"])


def sensitivity_bounds(study_dir: str | Path, max_drop: float) -> Mapping[str, float]:
    """Per-layer sparsity upper bounds from a study's stored analysis (for narrowing the space).

    Raises ``ConfigError`` when the analysis has not been run for that study.
    """
    result = load_sensitivity(study_dir)
    if result is None:
        raise ConfigError(f"no sensitivity analysis in '{Path(study_dir) / FOLDER}'; run "
                          f"`sparsity-search sensitivity` first")
    return result.bounds(max_drop)


def format_sensitivity(result: SensitivityResult, max_drop: float | None = None) -> str:
    table = result.table()
    shown = table.copy()
    for column in shown.columns:
        if column.startswith("acc@") or column in ("near_zero_fraction",):
            shown[column] = shown[column].map("{:.3f}".format)
    shown["l2_norm"] = shown["l2_norm"].map("{:.2f}".format)
    lines = [f"Validation accuracy with one layer pruned ({result.criterion}, no fine-tuning); "
             f"dense: {result.dense_accuracy:.4f}", shown.to_string(index=False)]
    if max_drop is not None:
        bounds = result.bounds(max_drop)
        lines.append(f"\nLargest sparsity per layer losing <= {max_drop:g} accuracy: "
                     + ", ".join(f"{k}: {v:g}" for k, v in bounds.items()))
        lines.append(f"To search inside these bounds: `space: {{sensitivity_max_drop: "
                     f"{max_drop:g}}}` in the study's config (a new study, or this one from "
                     f"its start: the bounds change its space).")
    return "\n".join(lines)
