"""Models by name. ``build_model(settings, input_shape, num_classes)`` returns an ``nn.Module``."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

from torch import nn

from trainers.models.builtin import MLP, SmallCNN


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


def build_model(settings: ModelSettings, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Instantiate the named model for the data's input shape and number of classes."""
    if settings.name not in MODELS:
        raise ValueError(f"model.name must be one of {sorted(MODELS)}, got '{settings.name}'")
    return MODELS[settings.name](tuple(input_shape), num_classes, **settings.options)


__all__ = ["MLP", "MODELS", "ModelSettings", "SmallCNN", "build_model"]
