"""Data sets by name: the registry ``DATASETS`` and ``load_data(settings) -> DataBundle``.

Names: the registered ones (``digits``, ``synthetic``, ``pydoc_text``, ``torchvision:MNIST``, ...) or a user's
``module:callable`` data factory. A loader imports its module (and torch) only when it is called,
so the names are read without torch when a config is checked.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Callable

from trainers.data.settings import TORCHVISION_PREFIX, DataSettings
from trainers.errors import SetupError
from trainers.imports import is_callable_spec

if TYPE_CHECKING:
    from trainers.data.bundle import DataBundle

Loader = Callable[[DataSettings], "DataBundle"]


def _lazy(module: str, function: str, *args: Any) -> Loader:
    """``trainers.data.<module>.<function>(*args, settings)``, imported when first called."""
    def load(settings: DataSettings) -> DataBundle:
        loader = getattr(importlib.import_module(f"trainers.data.{module}"), function)
        return loader(*args, settings)
    load.module = module   # type: ignore[attr-defined]
    return load


DATASETS: dict[str, Loader] = {
    "digits": _lazy("builtin", "load_digits_bundle"),
    "synthetic": _lazy("builtin", "load_synthetic_bundle"),
    "pydoc_text": _lazy("text", "load_pydoc_text"),
    TORCHVISION_PREFIX + "MNIST": _lazy("torchvision_data", "load_mnist_family", "MNIST"),
    TORCHVISION_PREFIX + "FashionMNIST": _lazy("torchvision_data", "load_mnist_family",
                                               "FashionMNIST"),
    TORCHVISION_PREFIX + "KMNIST": _lazy("torchvision_data", "load_mnist_family", "KMNIST"),
    TORCHVISION_PREFIX + "CIFAR10": _lazy("torchvision_data", "load_cifar", "CIFAR10"),
    TORCHVISION_PREFIX + "CIFAR100": _lazy("torchvision_data", "load_cifar", "CIFAR100"),
    TORCHVISION_PREFIX + "ImageFolder": _lazy("torchvision_data", "load_image_folder"),
}


# Modules the loaders import when called (beside ``trainers.data.<module>``): what a process
# that will load the data can import ahead (the local backend's fork server does).
_LOADER_IMPORTS = {"builtin": ("sklearn.datasets", "sklearn.model_selection"),
                   "torchvision_data": ("torchvision.datasets",)}


def modules_to_preload(settings: DataSettings) -> list[str]:
    """The modules loading ``settings``' data imports (empty for a user's data factory)."""
    module = getattr(DATASETS.get(settings.name), "module", None)
    if module is None:
        return []
    return [f"trainers.data.{module}", *_LOADER_IMPORTS.get(module, ())]


def is_known_data_name(name: str) -> bool:
    """A registered data set, or a ``module:callable`` outside the ``torchvision:`` namespace."""
    return name in DATASETS or (is_callable_spec(name) and not name.startswith(TORCHVISION_PREFIX))


def load_data(settings: DataSettings) -> DataBundle:
    """Build the named data set's splits."""
    if settings.name in DATASETS:
        return DATASETS[settings.name](settings)
    if is_known_data_name(settings.name):
        from trainers.data.user import load_user_data

        return load_user_data(settings)
    raise SetupError(f"data.name must be one of {sorted(DATASETS)} or a 'module:callable' data "
                     f"factory, got '{settings.name}'")
