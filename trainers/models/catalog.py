"""Models by name: the built-ins in ``MODELS`` (``cnn``, ``mlp``, ``tiny_gpt``, ``vit``),
``torchvision:<arch>`` (any torchvision classification model), or a user's ``module:callable``
(see ``trainers.models.build``).

A built-in's factory imports its module (and torch) only when it is called, so the names are read
without torch when a config is checked (a ``torchvision:`` name asks torchvision for its list).
"""
from __future__ import annotations

import importlib
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Callable

from trainers.imports import is_callable_spec
from trainers.models.settings import TORCHVISION_PREFIX

if TYPE_CHECKING:
    from torch import nn

ModelFactory = Callable[..., "nn.Module"]


def _builtin(function: str, module: str = "builtin") -> ModelFactory:
    """``trainers.models.<module>.<function>``, imported when first called."""
    def build(input_shape: tuple[int, ...], num_classes: int, **options: Any) -> nn.Module:
        factory = getattr(importlib.import_module(f"trainers.models.{module}"), function)
        return factory(input_shape, num_classes, **options)
    return build


MODELS: dict[str, ModelFactory] = {
    "cnn": _builtin("build_cnn"), "mlp": _builtin("build_mlp"),
    "tiny_gpt": _builtin("build_tiny_gpt", "transformers"),
    "vit": _builtin("build_vit", "transformers"),
}


@lru_cache(maxsize=1)
def torchvision_model_names() -> tuple[str, ...]:
    """The classification models torchvision offers (without the prefix)."""
    from torchvision import models

    return tuple(sorted(models.list_models(module=models)))


def is_torchvision_model(name: str) -> bool:
    return (name.startswith(TORCHVISION_PREFIX)
            and name[len(TORCHVISION_PREFIX):] in torchvision_model_names())


def is_known_model_name(name: str) -> bool:
    """A built-in, a torchvision classification model, or a ``module:callable``."""
    if name in MODELS:
        return True
    if name.startswith(TORCHVISION_PREFIX):
        return is_torchvision_model(name)
    return is_callable_spec(name)
