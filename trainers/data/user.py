"""Data sets from a user's ``module:callable`` named in the config (``data.name``).

The callable is called with ``data.options`` as keyword arguments, plus ``root``, ``download`` and
``seed`` when its signature names them. It returns a ``DataBundle``, a ``(train, val, test)`` or
``(train, test)`` tuple, or a mapping with ``train`` and optionally ``val``, ``test``,
``num_classes``, ``input_shape``, ``preprocessing`` (how raw inputs were made: a sentence or a
mapping with ``description``; recorded in exports, ``unknown`` when missing); splits are torch
``Dataset``s or ``DataLoader``s. Missing splits are carved from
``train`` with ``split_seed`` (see ``bundle_from_splits``).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from trainers.data.bundle import DataBundle
from trainers.data.settings import DataSettings
from trainers.data.splits import bundle_from_splits
from trainers.errors import SetupError
from trainers.imports import call_with_supported, load_callable


def bundle_from_user_value(value: Any, settings: DataSettings, name: str) -> DataBundle:
    """Normalise what a user's data factory returned into a ``DataBundle``."""
    if isinstance(value, DataBundle):
        return value
    parts: dict[str, Any]
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - {"train", "val", "test", "num_classes", "input_shape",
                                       "preprocessing"})
        if "train" not in value or unknown:
            raise SetupError(f"data factory '{name}' returned a mapping with keys "
                             f"{sorted(value)}; it needs 'train' and may have 'val', 'test', "
                             f"'num_classes', 'input_shape', 'preprocessing'")
        parts = dict(value)
    elif isinstance(value, Sequence) and len(value) in (2, 3):
        parts = dict(zip(("train", "val", "test") if len(value) == 3 else ("train", "test"),
                         value))
    else:
        raise SetupError(f"data factory '{name}' must return a DataBundle, a (train, val, test) "
                         f"or (train, test) tuple, or a mapping; got {type(value).__name__}")
    return bundle_from_splits(
        parts["train"], parts.get("val"), parts.get("test"),
        val_fraction=settings.val_fraction, test_fraction=settings.test_fraction,
        seed=settings.split_seed, num_classes=parts.get("num_classes"),
        input_shape=parts.get("input_shape"), name=name,
        preprocessing=parts.get("preprocessing"))


def load_user_data(settings: DataSettings) -> DataBundle:
    """Import and call the data factory ``settings.name`` (``module:callable``); whatever it
    raises becomes a ``SetupError`` naming the factory."""
    factory = load_callable(settings.name, what="data factory")
    offered = {"root": settings.root, "download": settings.download, "seed": settings.split_seed}
    what = f"data factory '{settings.name}'"
    try:
        value = call_with_supported(factory, settings.options, offered, what=what)
    except SetupError:
        raise
    except Exception as exc:    # the user's code failed: name it (run and inspect both say so)
        raise SetupError(f"{what} raised {type(exc).__name__}: {exc}") from exc
    return bundle_from_user_value(value, settings, settings.name)
