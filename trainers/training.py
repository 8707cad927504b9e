"""Training and evaluation loops.

In-memory ``TensorDataset``s are batched by slicing tensors on the device (no per-sample
DataLoader work); any other ``Dataset`` goes through a ``DataLoader``; a ``DataLoader`` given as a
split is used as it is.
"""
from __future__ import annotations

import math
from contextlib import nullcontext
from typing import Callable, Iterator

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from trainers.data.labels import LabelError, label_problem
from trainers.data.splits import rebuild_loader
from trainers.errors import SetupError
from trainers.pruning.in_place import InPlaceMasks
from trainers.train_settings import TrainSettings

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


class ModelOutputError(SetupError):
    """The model's forward does not return one logits tensor (what the loss, the metric and the
    cost counters read)."""


def check_output(output: object) -> torch.Tensor:
    """``output`` itself when it is a tensor; else a ``ModelOutputError`` saying what it is."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, dict):
        got, example = f"a dict with keys {sorted(map(str, output))}", " (e.g. out['logits'])"
    elif isinstance(output, (tuple, list)):
        kinds = ", ".join(type(item).__name__ for item in output[:4])
        got, example = f"a {type(output).__name__} of {len(output)} ({kinds})", " (e.g. out[0])"
    else:
        got, example = f"a {type(output).__name__}", ""
    raise ModelOutputError(
        f"forward must return one logits tensor (batch, classes), got {got}; return that tensor "
        f"itself{example} or wrap the model in a module that does: a custom loss= or metric= "
        f"(Python API) receives the same tensor, so neither can take another output")


def _default_loss_error(logits: torch.Tensor, targets: torch.Tensor) -> SetupError | None:
    """Why cross-entropy refused these targets, in the user's terms (``None``: not the labels)."""
    if logits.ndim == 2 and targets.ndim > 1 and not targets.is_floating_point():
        return LabelError(f"the labels have shape {list(targets.shape)} for logits of shape "
                          f"{list(logits.shape)}: cross-entropy needs one class index per "
                          f"sample, shape [{len(targets)}] (e.g. y.view(-1))")
    try:
        classes = logits.shape[1] if logits.ndim > 1 else 1
        problem = label_problem(targets, classes, classes_of="outputs of the model",
                                counted="labels of the batch that failed")
    except Exception:     # e.g. a device in a failed state: keep the original error
        return None
    return LabelError(f"the labels {problem}") if problem else None


def _one_sample_batch(exc: ValueError, x: torch.Tensor, dataset: Dataset,
                      batch_size: int) -> SetupError | None:
    """Batch norm's refusal of a one-sample training batch, said in the data's terms."""
    if len(x) != 1 or "more than 1 value per channel" not in str(exc):
        return None
    size = len(dataset) if hasattr(dataset, "__len__") else "?"
    return SetupError(
        f"the last training batch holds 1 sample ({size} training samples, data.batch_size "
        f"{batch_size}), and the model's batch norm cannot train on one value per channel "
        f"({exc}); use a data.batch_size that leaves more in the last batch (e.g. "
        f"{batch_size + 1}), or one sample more or fewer in the training split")


def make_optimizer(model: nn.Module, settings: TrainSettings) -> torch.optim.Optimizer:
    """SGD (momentum 0.9) or Adam over the trainable parameters.

    ``foreach=True``: one multi-tensor kernel per update step instead of a Python loop over the
    parameters (torch picks it on GPUs only); the same arithmetic, bit for bit, and a smaller
    fixed cost per step, which dominates small models.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if settings.optimizer == "sgd":
        return torch.optim.SGD(params, lr=settings.lr, momentum=0.9,
                               weight_decay=settings.weight_decay, foreach=True)
    return torch.optim.Adam(params, lr=settings.lr, weight_decay=settings.weight_decay,
                            foreach=True)


def _labels(y: torch.Tensor) -> torch.Tensor:
    """Integer labels as int64 (cross-entropy takes int64 or uint8 targets: int32 labels, as
    ``.int()`` or numpy on some platforms makes them, failed there); other labels as given."""
    if y.dtype in (torch.int8, torch.int16, torch.int32):
        return y.long()
    return y


def iterate_batches(dataset: Dataset, batch_size: int, device: torch.device, *, shuffle: bool,
                    generator: torch.Generator | None = None
                    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(x, y)`` batches on ``device`` (integer labels as int64: ``_labels``).

    A user's ``DataLoader`` is iterated as given (its own batch size, sampler and workers).
    """
    if isinstance(dataset, DataLoader):
        for batch in dataset:
            yield (batch[0].to(device, non_blocking=True),
                   _labels(batch[1]).to(device, non_blocking=True))
        return
    if isinstance(dataset, TensorDataset):
        x, y = dataset.tensors[0], dataset.tensors[1]
        n = len(x)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            yield x[idx].to(device, non_blocking=True), _labels(y[idx]).to(device,
                                                                          non_blocking=True)
        return
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator)
    for x, y in loader:
        yield x.to(device, non_blocking=True), _labels(y).to(device, non_blocking=True)


def train_epochs(model: nn.Module, dataset: Dataset, settings: TrainSettings, *, batch_size: int,
                 device: torch.device, seed: int, loss_fn: LossFn | None = None,
                 extra_loss: Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor],
                                      torch.Tensor] | None = None,
                 on_epoch: Callable[[int], None] | None = None,
                 on_step: Callable[[int], None] | None = None,
                 lr_window: tuple[int, int] | None = None) -> int:
    """Train ``settings.epochs`` epochs in place; return the number of optimizer steps.

    ``extra_loss(model, x, y, logits)`` adds a term (regularisation, distillation). ``on_epoch(e)``
    runs before each epoch (to measure the model: masked layers may hold their effective weights
    as plain parameters then, see ``trainers.pruning.in_place``), ``on_step(s)`` before each
    optimizer step's forward pass (schedules).
    ``lr_window=(first_epoch, total_epochs)`` places these epochs inside a longer cosine schedule
    (a run split in phases, e.g. around a physical shrink). Raises ``TrainingDiverged`` on a NaN /
    infinite loss, ``ModelOutputError`` when the model does not return one tensor and, with the
    default loss, ``LabelError`` when cross-entropy cannot read the labels (a ``SetupError``, said
    in the user's terms instead of torch's).
    """
    default_loss = loss_fn is None
    loss_fn = loss_fn or nn.functional.cross_entropy
    optimizer = make_optimizer(model, settings)
    scheduler = None
    if settings.lr_schedule == "cosine" and lr_window is not None and lr_window[1] > 0:
        first, total = lr_window
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda e: 0.5 * (1.0 + math.cos(math.pi * min(first + e, total) / total)))
    elif settings.lr_schedule == "cosine" and settings.epochs > 0:
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=settings.epochs)
    generator = torch.Generator().manual_seed(seed)
    steps = 0
    model.train()
    # Masks applied once per step, not in every forward pass (the same arithmetic); a schedule
    # that changes masks between steps, or an extra loss, keeps the parametrized path.
    in_place = InPlaceMasks(model) if on_step is None and extra_loss is None else None
    with in_place or nullcontext():
        for epoch in range(settings.epochs):
            if on_epoch is not None:   # sees the effective weights (in place, or by the masks)
                with in_place.applied() if in_place else nullcontext():
                    on_epoch(epoch)
            for x, y in iterate_batches(dataset, batch_size, device, shuffle=True,
                                        generator=generator):
                if on_step is not None:
                    on_step(steps)
                if in_place:
                    in_place.apply()
                try:
                    logits = model(x)
                except ValueError as exc:
                    raise _one_sample_batch(exc, x, dataset, batch_size) or exc
                if steps == 0:
                    check_output(logits)
                try:
                    loss = loss_fn(logits, y)
                except (IndexError, RuntimeError, TypeError, ValueError) as exc:
                    error = _default_loss_error(logits, y) if default_loss else None
                    if error is None:
                        raise
                    raise error from exc
                if extra_loss is not None:
                    loss = loss + extra_loss(model, x, y, logits)
                if not math.isfinite(loss.item()):
                    raise TrainingDiverged(f"loss became {loss.item()} at epoch {epoch}, "
                                           f"step {steps}")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if in_place:
                    in_place.restore()
                optimizer.step()
                steps += 1
            if scheduler is not None:
                scheduler.step()
    return steps


MetricFn = Callable[[torch.Tensor, torch.Tensor], float]


def accuracy_metric(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """Top-1 accuracy over all predictions."""
    return (logits.argmax(dim=1) == targets).float().mean().item()


@torch.no_grad()
def predict(model: nn.Module, dataset: Dataset, device: torch.device, batch_size: int = 1024
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """All logits and targets of a split, in order."""
    model.eval()
    logits, targets = [], []
    if isinstance(dataset, DataLoader) and dataset.drop_last and dataset.batch_size is not None:
        # A metric over the split counts every sample (its size is what intervals are over).
        dataset = rebuild_loader(dataset, dataset.dataset, shuffle=False, drop_last=False)
    for x, y in iterate_batches(dataset, batch_size, device, shuffle=False):
        logits.append(check_output(model(x)))
        targets.append(y)
    return torch.cat(logits), torch.cat(targets)


def measure_metric(model: nn.Module, dataset: Dataset, device: torch.device,
             metric: MetricFn | None = None) -> float:
    """The metric (top-1 accuracy by default) of ``model`` on ``dataset``."""
    logits, targets = predict(model, dataset, device)
    return float((metric or accuracy_metric)(logits, targets))
