"""Models by name. ``build_model(settings, input_shape, num_classes)`` returns an ``nn.Module``.

Names: the built-ins in ``MODELS`` (``cnn``, ``mlp``), ``torchvision:<arch>`` (any torchvision
classification model), or a user's ``module:callable`` (see ``build_user_model``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

from torch import nn

from trainers.errors import SetupError
from trainers.imports import call_with_supported, is_callable_spec, load_callable
from trainers.models.builtin import MLP, SmallCNN
from trainers.models.torchvision_models import (PREFIX as TORCHVISION_PREFIX,
                                                build_torchvision_model, is_torchvision_model)


@dataclass(frozen=True)
class ModelSettings:
    """The ``model:`` section: a registered name and keyword options for its factory."""

    name: str = "cnn"
    options: dict[str, Any] = field(default_factory=dict)


def _cnn(input_shape: tuple[int, ...], num_classes: int, **opts: Any) -> nn.Module:
    return SmallCNN(in_channels=input_shape[0], num_classes=num_classes,
                    input_size=input_shape[-1], **opts)


def _mlp(input_shape: tuple[int, ...], num_classes: int, **opts: Any) -> nn.Module:
    if "hidden" in opts:
        opts = {**opts, "hidden": tuple(opts["hidden"])}
    return MLP(in_features=math.prod(input_shape), num_classes=num_classes, **opts)


ModelFactory = Callable[..., nn.Module]
MODELS: dict[str, ModelFactory] = {"cnn": _cnn, "mlp": _mlp}


def is_known_model_name(name: str) -> bool:
    """A built-in, a torchvision classification model, or a ``module:callable``."""
    if name in MODELS:
        return True
    if name.startswith(TORCHVISION_PREFIX):
        return is_torchvision_model(name)
    return is_callable_spec(name)


def build_user_model(name: str, input_shape: tuple[int, ...], num_classes: int,
                     **options: Any) -> nn.Module:
    """Call the user's ``module:callable`` with ``options``, plus ``num_classes``,
    ``input_shape`` and ``in_channels`` when its signature names them."""
    factory = load_callable(name, what="model factory")
    offered = {"num_classes": num_classes, "input_shape": tuple(input_shape),
               "in_channels": input_shape[0] if input_shape else None}
    model = call_with_supported(factory, options, offered, what=f"model factory '{name}'")
    if not isinstance(model, nn.Module):
        raise SetupError(f"model factory '{name}' returned {type(model).__name__}, "
                         f"expected a torch.nn.Module")
    return model


def build_model(settings: ModelSettings, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Instantiate the named model for the data's input shape and number of classes."""
    name = settings.name
    if name in MODELS:
        return MODELS[name](tuple(input_shape), num_classes, **settings.options)
    if name.startswith(TORCHVISION_PREFIX):
        return build_torchvision_model(name, tuple(input_shape), num_classes, **settings.options)
    if is_callable_spec(name):
        return build_user_model(name, tuple(input_shape), num_classes, **settings.options)
    raise SetupError(f"model.name must be one of {sorted(MODELS)}, 'torchvision:<arch>' or a "
                     f"'module:callable', got '{name}'")


__all__ = ["MLP", "MODELS", "ModelSettings", "SmallCNN", "build_model", "is_known_model_name"]
