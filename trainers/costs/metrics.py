"""The metrics every trial records: unit, nature (counted / estimated / measured), meaning.

Every figure shown to a user carries its nature so that an analytic estimate is never read as a
measurement: ``metric_label`` builds the column / axis names used by tables and plots.
"""
from __future__ import annotations

from dataclasses import dataclass

COUNTED = "counted"        # exact arithmetic on the model's shapes (FLOPs, bytes, parameters)
ESTIMATED = "estimated"    # an analytic model or a rule of thumb (energy from a profile, CPU-time)
MEASURED = "measured"      # read from a clock or a hardware counter on this run's machine

ENERGY_SOURCE_NATURE = {"nvml": MEASURED, "rapl": MEASURED, "estimate": ESTIMATED,
                        "analytic": ESTIMATED}


@dataclass(frozen=True)
class MetricInfo:
    unit: str
    nature: str
    meaning: str


METRICS: dict[str, MetricInfo] = {
    "accuracy": MetricInfo("", MEASURED, "validation metric after fine-tuning (selection)"),
    "test_accuracy": MetricInfo("", MEASURED, "test metric after fine-tuning (reporting only)"),
    "flops": MetricInfo("FLOPs", COUNTED, "effective FLOPs per sample (sparsity-aware)"),
    "flops_dense": MetricInfo("FLOPs", COUNTED, "FLOPs per sample with dense kernels"),
    "bops": MetricInfo("bit-ops", COUNTED, "surviving MACs x weight bits x activation bits"),
    "params_nonzero": MetricInfo("params", COUNTED, "parameters left after pruning"),
    "size_bytes": MetricInfo("bytes", COUNTED, "stored size: weights, sparsity pattern, rest"),
    "energy_uj": MetricInfo("uJ", ESTIMATED, "inference energy per sample from the profile"),
    "train_energy_j": MetricInfo("J", MEASURED, "energy of the trial's training (see source)"),
    "train_seconds": MetricInfo("s", MEASURED, "wall time of the trial's training"),
    "train_flops": MetricInfo("FLOPs", COUNTED, "training FLOPs of the trial (3 x forward)"),
    "latency_ms": MetricInfo("ms", MEASURED, "median time per batch of the exported model"),
}

# Abbreviations used in labels.
SHORT_NATURE = {COUNTED: "counted", ESTIMATED: "est", MEASURED: "meas"}


def metric_nature(name: str, energy_source: str | None = None) -> str:
    """``counted``, ``estimated`` or ``measured``; training energy follows its meter's source."""
    if name == "train_energy_j" and energy_source is not None:
        if energy_source not in ENERGY_SOURCE_NATURE:
            raise ValueError(f"energy_source must be one of {sorted(ENERGY_SOURCE_NATURE)}, "
                             f"got '{energy_source}'")
        return ENERGY_SOURCE_NATURE[energy_source]
    if name not in METRICS:
        raise ValueError(f"metric must be one of {list(METRICS)}, got '{name}'")
    return METRICS[name].nature


def metric_label(name: str, energy_source: str | None = None) -> str:
    """Column / axis label, e.g. ``energy_uj (est)``, ``latency_ms (meas)``,
    ``train_energy_j (est: estimate)`` or ``train_energy_j (meas: rapl)``."""
    nature = SHORT_NATURE[metric_nature(name, energy_source)]
    if name == "train_energy_j" and energy_source:
        return f"{name} ({nature}: {energy_source})"
    return f"{name} ({nature})"
