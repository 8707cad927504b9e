"""The dense reference's key for a model and data given from Python (the config names neither)."""
from __future__ import annotations

import hashlib
import json

from torch import nn

from search.config import ExperimentConfig
from search.schema import to_dict
from trainers.data import DataBundle
from trainers.training import LossFn


def _size(split: object) -> int:
    return len(getattr(split, "dataset", split))  # a DataLoader counts its data set


def user_dense_keys(model: nn.Module, data: DataBundle, config: ExperimentConfig,
                    loss_fn: LossFn | None = None) -> tuple[str, str]:
    """Dense-reference keys for a model and data the config does not name (Python API): the key,
    then its older form, which a study made before still holds.

    They hash what can be seen without reading the data: the model's class and parameter shapes,
    the data's name, shapes and split sizes, the dense training settings, batch size, seed and
    loss. What they cannot see needs a new ``dense_key`` or study: data whose *content* changes
    at equal sizes, a model changed only in parameter-free parts (an activation, the forward
    code), a loss function changed under the same name (every lambda is ``<lambda>``). The
    class is named without its module: a script's class is ``__main__.Net`` when the script runs
    and ``script.Net`` when another script (an export) imports it; the older form named both.
    """
    cls = type(model)
    return (_dense_hash(model, data, config, loss_fn, cls.__qualname__),
            _dense_hash(model, data, config, loss_fn, f"{cls.__module__}.{cls.__qualname__}"))


def _dense_hash(model: nn.Module, data: DataBundle, config: ExperimentConfig,
                loss_fn: LossFn | None, model_name: str) -> str:
    parts = {
        "model": model_name,
        "params": [[n, list(p.shape)] for n, p in model.state_dict().items()],
        "data": [data.name, list(data.input_shape), data.num_classes,
                 _size(data.train), _size(data.val), _size(data.test)],
        "dense": to_dict(config.dense), "batch_size": config.data.batch_size, "seed": config.seed,
        "loss": getattr(loss_fn, "__qualname__", repr(loss_fn)) if loss_fn else None,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


__all__ = ["user_dense_keys"]
