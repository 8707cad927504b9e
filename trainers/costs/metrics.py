"""The metric registry: one row per metric every trial records, and every fact about it.

Everything that needs a list of metrics or a fact about one reads this table: the objectives a
config may name, early stopping (which objectives are known before training), pick constraints
and their command-line flags, the printed front table, and the report's labels. Adding a metric
is one row here plus the code in ``trainers`` that measures it.

Every figure shown to a user carries its nature so that an analytic estimate is never read as a
measurement: ``metric_label`` builds the column / axis names used by tables and plots.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

COUNTED = "counted"        # exact arithmetic on the model's shapes (FLOPs, bytes, parameters)
ESTIMATED = "estimated"    # an analytic model or a rule of thumb (energy from a profile, CPU-time)
MEASURED = "measured"      # read from a clock or a hardware counter on this run's machine

# Directions, in Optuna's words (search.pareto re-exports them: one pair for the project).
MAXIMIZE, MINIMIZE = "maximize", "minimize"

ENERGY_SOURCE_NATURE = {"nvml": MEASURED, "rapl": MEASURED, "estimate": ESTIMATED,
                        "analytic": ESTIMATED}
SOURCED = "train_energy_j"   # the metric whose nature follows its meter (``energy_source``)


@dataclass(frozen=True)
class MetricInfo:
    """One metric: what it is, which way is better, and how it is shown and bounded."""

    unit: str
    nature: str                        # COUNTED, ESTIMATED or MEASURED
    meaning: str
    direction: str = MINIMIZE          # MAXIMIZE or MINIMIZE: which way is better
    known_before_training: bool = False  # analytic: from the candidate's shapes alone
    objective: bool = True             # may be an objective or a pick / sampler constraint
    label: str = ""                    # axis / row label in figures (default: the name)
    scale: float = 1.0                 # shown as value / scale (axis, column)
    fmt: str = "{:.4g}"                # format of the shown value
    column: str = ""                   # headline column of the front table ("": none)
    bound: str = ""                    # name of its pick bound (default: the name), e.g. size_kb
    bound_scale: float = 1.0           # a bound is given in units of this (KB: 1024 bytes)
    limits: tuple[float, float] | None = None   # valid range of a bound (None: > 0)


# Row order is display order: the front table's headline columns and the pick flags follow it.
METRICS: dict[str, MetricInfo] = {
    "accuracy": MetricInfo(
        "", MEASURED, "validation metric after fine-tuning (selection)", MAXIMIZE,
        label="validation accuracy", fmt="{:.4f}", column="val_acc", limits=(0.0, 1.0)),
    "test_accuracy": MetricInfo(
        "", MEASURED, "test metric after fine-tuning (reporting only)", MAXIMIZE,
        objective=False, label="test accuracy (reported, not selected on)", fmt="{:.4f}",
        column="test_acc", limits=(0.0, 1.0)),
    "flops": MetricInfo(
        "FLOPs", COUNTED, "effective FLOPs per sample (sparsity-aware)",
        known_before_training=True, label="effective MFLOPs per sample (sparsity-aware)",
        scale=1e6, fmt="{:.3f}", column="MFLOPs"),
    "energy_uj": MetricInfo(
        "uJ", ESTIMATED, "inference energy per sample from the profile",
        known_before_training=True, label="inference energy per sample, µJ (analytic estimate)",
        fmt="{:.3f}", column="energy_uJ(est)"),
    "size_bytes": MetricInfo(
        "bytes", COUNTED, "stored size: weights, sparsity pattern, rest",
        known_before_training=True, label="model size, KB", scale=1024.0,
        fmt="{:.1f}", column="size_KB", bound="size_kb", bound_scale=1024.0),
    "latency_ms": MetricInfo(
        "ms", MEASURED, "median time per batch of the exported model",
        label="latency per batch, ms (measured)", fmt="{:.3f}", column="latency_ms(meas)"),
    "train_energy_j": MetricInfo(
        "J", MEASURED, "energy of the trial's training (see source)",
        label="training energy, J (see source)", fmt="{:.2f}", column="train_J"),
    "flops_dense": MetricInfo(
        "FLOPs", COUNTED, "FLOPs per sample with dense kernels", known_before_training=True,
        label="MFLOPs per sample (dense kernels)", scale=1e6),
    "bops": MetricInfo(
        "bit-ops", COUNTED, "surviving MACs x weight bits x activation bits",
        known_before_training=True, label="bit-operations (G)", scale=1e9),
    "params_nonzero": MetricInfo(
        "params", COUNTED, "parameters left after pruning", known_before_training=True,
        label="nonzero parameters", fmt="{:,.0f}"),
    "train_seconds": MetricInfo(
        "s", MEASURED, "wall time of the trial's training", label="training time, s"),
    "train_flops": MetricInfo(
        "FLOPs", COUNTED, "training FLOPs of the trial (3 x forward)",
        label="training GFLOPs", scale=1e9),
}

# Abbreviations used in labels.
SHORT_NATURE = {COUNTED: "counted", ESTIMATED: "est", MEASURED: "meas"}


def metric_info(name: str) -> MetricInfo:
    """The row of ``name``; an unknown name is an error that lists the known ones."""
    if name not in METRICS:
        raise ValueError(f"metric must be one of {list(METRICS)}, got '{name}'")
    return METRICS[name]


def objective_metrics() -> list[str]:
    """Metrics a study may optimise or constrain (never test_accuracy: selection reads the
    validation split, the test split is for reporting only)."""
    return [name for name, info in METRICS.items() if info.objective]


def known_before_training() -> list[str]:
    """Metrics known from a candidate's shapes alone, before any training (the analytic costs)."""
    return [name for name, info in METRICS.items() if info.known_before_training]


def headline_metrics() -> list[str]:
    """Metrics with a column of their own in the front table (``column``), in display order."""
    return [name for name, info in METRICS.items() if info.column]


def format_value(name: str, value: float) -> str:
    """A value as tables and pages show it: divided by the metric's scale, in its format."""
    info = metric_info(name)
    return info.fmt.format(value / info.scale)


def direction(name: str) -> str:
    """The better way of a metric (``maximize`` / ``minimize``); unknown names are costs."""
    return METRICS[name].direction if name in METRICS else MINIMIZE


def metric_nature(name: str, energy_source: str | None = None) -> str:
    """``counted``, ``estimated`` or ``measured``; training energy follows its meter's source."""
    if name == SOURCED and energy_source is not None:
        if energy_source not in ENERGY_SOURCE_NATURE:
            raise ValueError(f"energy_source must be one of {sorted(ENERGY_SOURCE_NATURE)}, "
                             f"got '{energy_source}'")
        return ENERGY_SOURCE_NATURE[energy_source]
    return metric_info(name).nature


def metric_label(name: str, energy_source: str | None = None) -> str:
    """Column / axis label, e.g. ``energy_uj (est)``, ``latency_ms (meas)``,
    ``train_energy_j (est: estimate)`` or ``train_energy_j (meas: rapl)``."""
    nature = SHORT_NATURE[metric_nature(name, energy_source)]
    if name == SOURCED and energy_source:
        return f"{name} ({nature}: {energy_source})"
    return f"{name} ({nature})"


def column_name(name: str, energy_sources: Sequence[str] = (), selection: str = "accuracy"
                ) -> str:
    """The front table's column of a metric: its headline column (``MFLOPs``), the training
    energy's with its meters' nature (``train_J(est)``; ``train_J(nvml/rapl)`` when mixed), or
    ``name(nature)`` for a metric without one. ``selection``: the study's selection metric, which
    the accuracy columns hold; another than accuracy names them (``val_f1_macro``,
    ``test_f1_macro``)."""
    if name in ("accuracy", "test_accuracy") and selection != "accuracy":
        return f"{'val' if name == 'accuracy' else 'test'}_{selection}"
    info = metric_info(name)
    if not info.column:
        return f"{name}({SHORT_NATURE[info.nature]})"
    sources = sorted(set(energy_sources))
    if name != SOURCED or not sources:
        return info.column
    if len(sources) == 1:
        return f"{info.column}({SHORT_NATURE[metric_nature(name, sources[0])]})"
    return f"{info.column}({'/'.join(sources)})"
