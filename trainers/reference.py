"""The dense reference model: trained once per study and cached in the study folder."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping

import torch
from torch import nn

from trainers.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from trainers.data.bundle import DataBundle
from trainers.errors import SetupError
from trainers.file_lock import one_at_a_time
from trainers.train_settings import TrainSettings
from trainers.training import LossFn, train_epochs


def count_other_params(model: nn.Module, prunable: set[str]) -> int:
    """Parameters that are not the weight of a prunable layer (biases, norms, embeddings). A
    parameter several modules hold (tied weights: an output head and its token embedding) counts
    once, as it is stored once."""
    layer_weights = {id(dict(module.named_parameters(recurse=False)).get("weight"))
                     for name, module in model.named_modules() if name in prunable}
    return sum(param.numel() for param in model.parameters() if id(param) not in layer_weights)


class DenseMismatch(SetupError):
    """An existing study's dense reference was made with other settings than this run's."""


def load_or_train_dense(path: str | Path, key: str | tuple[str, ...],
                        model_factory: Callable[[], nn.Module],
                        data: DataBundle, settings: TrainSettings, *, batch_size: int,
                        device: torch.device, seed: int, loss_fn: LossFn | None = None,
                        log: Callable[[str], None] = print,
                        replace: bool = True) -> Mapping[str, torch.Tensor]:
    """Return the dense state dict, training it only when no checkpoint with ``key`` exists.

    ``key`` is a hash of everything that defines the dense model (model, data, training settings,
    seed), or several (the first is written; the others, older forms of it, are accepted too); a
    checkpoint with another key is ignored and replaced (atomically), unless
    ``replace`` is False (an existing study's trials were measured against it: then
    ``DenseMismatch``, and the file stays as it is). A file that is
    corrupt or not a dense reference is refused (``CheckpointError``), not overwritten: writes are
    atomic, so such a file was not left by a killed run, and it may be someone's data.
    """
    path = Path(path)
    with one_at_a_time(path):   # a second process on a new study waits, then loads it
        return _load_or_train(path, (key,) if isinstance(key, str) else tuple(key), model_factory,
                              data, settings, batch_size=batch_size, device=device, seed=seed,
                              loss_fn=loss_fn, log=log, replace=replace)


def _load_or_train(path: Path, accepted: tuple[str, ...], model_factory: Callable[[], nn.Module],
                   data: DataBundle, settings: TrainSettings, *, batch_size: int,
                   device: torch.device, seed: int, loss_fn: LossFn | None,
                   log: Callable[[str], None], replace: bool) -> Mapping[str, torch.Tensor]:
    if path.exists():
        try:
            stored = load_checkpoint(path)
        except CheckpointError as exc:
            raise CheckpointError(f"dense reference {exc}; delete it to retrain") from exc
        if not (isinstance(stored, dict) and isinstance(stored.get("key"), str)
                and isinstance(stored.get("state_dict"), dict)):
            raise CheckpointError(f"dense reference '{path}' is not a checkpoint written by "
                                  f"sparsity-search (no 'key' / 'state_dict'); delete it to retrain")
        if stored["key"] in accepted:
            return stored["state_dict"]
        if not replace:
            raise DenseMismatch(
                f"the dense reference '{path}' was trained with other settings than this run's "
                f"(another model, data, loss or dense settings: e.g. a study run from Python, "
                f"resumed from the command line); the study's trials were measured against it, "
                f"so it is not retrained: run with what the study was made with (from Python: "
                f"the same model, data and loss, or its dense_key=; data.root is part of the "
                f"settings: run with the data where it was) or use a new study name")
        log(f"dense reference at {path} was made with other settings; retraining it")
    torch.manual_seed(seed)
    model = model_factory().to(device)
    log(f"training the dense reference ({settings.epochs} epochs) ...")
    train_epochs(model, data.train, settings, batch_size=batch_size, device=device, seed=seed,
                 loss_fn=loss_fn)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    save_checkpoint({"key": accepted[0], "state_dict": state}, path)
    return state
