"""Data sets by name. ``load_data(settings)`` returns a ``DataBundle``."""
from __future__ import annotations

from typing import Callable

from trainers.data.builtin import load_digits_bundle, load_synthetic_bundle
from trainers.data.bundle import DataBundle, DataSettings

DATASETS: dict[str, Callable[[DataSettings], DataBundle]] = {
    "digits": load_digits_bundle,
    "synthetic": load_synthetic_bundle,
}


def load_data(settings: DataSettings) -> DataBundle:
    """Build the named data set's splits."""
    if settings.name not in DATASETS:
        raise ValueError(f"data.name must be one of {sorted(DATASETS)}, got '{settings.name}'")
    return DATASETS[settings.name](settings)


__all__ = ["DATASETS", "DataBundle", "DataSettings", "load_data"]
