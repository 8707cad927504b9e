"""Data sets by name. ``load_data(settings)`` returns a ``DataBundle``.

Names: the registered ones in ``DATASETS`` (``digits``, ``synthetic``, ``torchvision:MNIST``,
``torchvision:CIFAR10``, ...) or a user's ``module:callable`` data factory.
"""
from __future__ import annotations

from typing import Callable

from trainers.data.builtin import load_digits_bundle, load_synthetic_bundle
from trainers.data.bundle import DataBundle, DataSettings
from trainers.data.splits import bundle_from_splits
from trainers.data.torchvision_data import LOADERS as TORCHVISION_LOADERS
from trainers.data.user import load_user_data
from trainers.errors import SetupError
from trainers.imports import is_callable_spec

DATASETS: dict[str, Callable[[DataSettings], DataBundle]] = {
    "digits": load_digits_bundle,
    "synthetic": load_synthetic_bundle,
    **TORCHVISION_LOADERS,
}


def is_known_data_name(name: str) -> bool:
    """A registered data set, or a ``module:callable`` outside the ``torchvision:`` namespace."""
    return name in DATASETS or (is_callable_spec(name) and not name.startswith("torchvision:"))


def load_data(settings: DataSettings) -> DataBundle:
    """Build the named data set's splits."""
    if settings.name in DATASETS:
        return DATASETS[settings.name](settings)
    if is_known_data_name(settings.name):
        return load_user_data(settings)
    raise SetupError(f"data.name must be one of {sorted(DATASETS)} or a 'module:callable' data "
                     f"factory, got '{settings.name}'")


__all__ = ["DATASETS", "DataBundle", "DataSettings", "bundle_from_splits", "is_known_data_name",
           "load_data"]
