"""Selection metrics by name: ``metric(logits, targets) -> float``, higher is better.

The study records the chosen metric under ``accuracy`` (the objective's name) and its name in the
study's ``metric`` attribute. Logits and targets arrive on the study's device.
"""
from __future__ import annotations

from typing import Callable

import torch

from trainers.errors import SetupError
from trainers.training import MetricFn, accuracy_metric


def top_k_accuracy(k: int) -> MetricFn:
    """Fraction of samples whose target is among the ``k`` largest logits."""
    def metric(logits: torch.Tensor, targets: torch.Tensor) -> float:
        top = logits.topk(min(k, logits.shape[1]), dim=1).indices
        return (top == targets[:, None]).any(dim=1).float().mean().item()
    metric.__name__ = f"top{k}_accuracy"
    return metric


def macro_f1(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """Unweighted mean over classes of F1 (classes absent from targets and predictions skipped)."""
    predicted = logits.argmax(dim=1)
    classes = torch.unique(torch.cat([predicted, targets]))
    scores = []
    for c in classes:
        tp = ((predicted == c) & (targets == c)).sum().item()
        fp = ((predicted == c) & (targets != c)).sum().item()
        fn = ((predicted != c) & (targets == c)).sum().item()
        scores.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return float(sum(scores) / len(scores)) if scores else 0.0


SELECTION_METRICS: dict[str, Callable[[], MetricFn]] = {
    "accuracy": lambda: accuracy_metric,
    "top5": lambda: top_k_accuracy(5),
    "f1_macro": lambda: macro_f1,
}


def get_metric(name: str) -> MetricFn:
    if name not in SELECTION_METRICS:
        raise SetupError(f"metric must be one of {sorted(SELECTION_METRICS)} or a callable "
                         f"(logits, targets) -> float, got '{name}'")
    return SELECTION_METRICS[name]()


def check_metric_fits(name: str, num_classes: int) -> None:
    """``top5`` of 5 classes or fewer counts every prediction as right (accuracy 1.0 for every
    trial): refused."""
    if name == "top5" and num_classes <= 5:
        raise SetupError(f"metric 'top5' needs more than 5 classes, the data has {num_classes}: "
                         f"every prediction would count as right (use 'accuracy')")


LAMBDA_METRIC = "custom_metric"   # the name of a metric given as a lambda


def metric_name(metric: MetricFn | str | None) -> str:
    """A readable name for a metric given by name or as a callable."""
    if metric is None:
        return "accuracy"
    if isinstance(metric, str):
        return metric
    name = getattr(metric, "__name__", type(metric).__name__)
    return LAMBDA_METRIC if name == "<lambda>" else name   # "val_<lambda>" read as markup
