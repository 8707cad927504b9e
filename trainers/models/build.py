"""``build_model(settings, input_shape, num_classes)``: the named model as an ``nn.Module``.

Every ``nn.MultiheadAttention`` of the model is split into four ``Linear`` layers
(``trainers.models.attention``), so the search sees, masks and counts its projections."""
from __future__ import annotations

import warnings
from typing import Any

from torch import nn

from trainers.errors import SetupError
from trainers.imports import call_with_supported, is_callable_spec, load_callable
from trainers.models.attention import split_attention
from trainers.models.catalog import MODELS
from trainers.models.settings import TORCHVISION_PREFIX, ModelSettings
from trainers.models.torchvision_models import build_torchvision_model


def build_user_model(name: str, input_shape: tuple[int, ...], num_classes: int,
                     **options: Any) -> nn.Module:
    """Call the user's ``module:callable`` with ``options``, plus ``num_classes``,
    ``input_shape`` and ``in_channels`` when its signature names them. Whatever it raises
    becomes a ``SetupError`` naming the factory."""
    factory = load_callable(name, what="model factory")
    offered = {"num_classes": num_classes, "input_shape": tuple(input_shape),
               "in_channels": input_shape[0] if input_shape else None}
    what = f"model factory '{name}'"
    try:
        model = call_with_supported(factory, options, offered, what=what)
    except SetupError:
        raise
    except Exception as exc:    # the user's code failed: name it (run and inspect both say so)
        raise SetupError(f"{what} raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(model, nn.Module):
        raise SetupError(f"model factory '{name}' returned {type(model).__name__}, "
                         f"expected a torch.nn.Module")
    return model


def build_model(settings: ModelSettings, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Instantiate the named model for the data's input shape and number of classes (attention
    split into ``Linear`` projections)."""
    name = settings.name
    if name in MODELS or name.startswith(TORCHVISION_PREFIX):
        build = MODELS.get(name, build_torchvision_model)
        args = (tuple(input_shape), num_classes) if name in MODELS else \
            (name, tuple(input_shape), num_classes)
        try:
            with warnings.catch_warnings():   # zero-width layers are refused in our words later
                warnings.filterwarnings("ignore", message="Initializing zero-element tensors")
                model = build(*args, **settings.options)
        except (TypeError, ValueError, RuntimeError) as exc:
            # an option the model does not take (a typo, most often) or a value it cannot build
            # with (a negative width: torch cannot make the tensor)
            raise SetupError(f"model.options {settings.options} do not fit model '{name}': "
                             f"{exc}") from exc
    elif is_callable_spec(name):
        model = build_user_model(name, tuple(input_shape), num_classes, **settings.options)
    else:
        raise SetupError(f"model.name must be one of {sorted(MODELS)}, 'torchvision:<arch>' or a "
                         f"'module:callable', got '{name}'")
    split_attention(model)
    return model
