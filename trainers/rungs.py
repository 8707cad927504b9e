"""Rungs: look at a candidate's validation accuracy part-way through its fine-tuning, so a search
can stop a candidate that cannot reach the front (see ``search.early_stopping``)."""
from __future__ import annotations

from typing import Callable, Protocol

from torch import nn

from trainers.eval_context import EvalContext
from trainers.training import measure_metric



class RungCheck(Protocol):
    """Called with (epochs done, validation accuracy) after each epoch in ``rungs``."""

    rungs: tuple[int, ...]

    def __call__(self, epoch: int, accuracy: float) -> None: ...


class StopCandidate(Exception):
    """Raised by a rung check: the candidate is not worth training further."""

    def __init__(self, epoch: int, accuracy: float, reason: str):
        super().__init__(reason)
        self.epoch = epoch
        self.accuracy = accuracy
        self.reason = reason


def rung_hook(model: nn.Module, context: EvalContext, check: RungCheck | None,
              epochs: int) -> Callable[[int], None] | None:
    """An ``on_epoch`` callback for ``train_epochs`` of ``epochs`` epochs: after each epoch in
    ``check.rungs`` (before the last) it measures validation accuracy and calls
    ``check(epoch, accuracy)``, which may raise ``StopCandidate``."""
    rungs = tuple(e for e in (check.rungs if check else ()) if 0 < e < epochs)
    if check is None or not rungs:
        return None

    def on_epoch(epoch: int) -> None:   # called before epoch ``epoch``: ``epoch`` are done
        if epoch in rungs:
            accuracy = measure_metric(model, context.data.val, context.device, context.metric_fn)
            model.train()
            check(epoch, accuracy)

    return on_epoch
