"""Labels as the default loss (cross-entropy) reads them: integer class indices in
``[0, num_classes)`` (or ``-100``, which cross-entropy skips).

Bad labels otherwise fail deep inside the first training step (``Target 12 is out of bounds``,
``expected target dtype to be Long``), and on a GPU as a device-side assert that ruins the
process. ``check_class_labels`` reads the labels of splits that keep them apart from the inputs
(``TensorDataset``s, a ``targets`` attribute) before anything trains; other splits are checked
batch by batch when a step fails (``trainers.training``). A user's own loss defines its targets:
callers skip these checks then.
"""
from __future__ import annotations

import numpy as np
import torch

from trainers.data.bundle import DataBundle
from trainers.data.splits import cheap_labels
from trainers.errors import SetupError

IGNORED_LABEL = -100   # cross-entropy's default ignore_index: such targets are skipped


class LabelError(SetupError):
    """The labels cannot be read by the default loss; the message says which rule they break."""


def label_problem(labels: torch.Tensor | np.ndarray, num_classes: int, *,
                  classes_of: str = "", counted: str = "labels") -> str | None:
    """What is wrong with ``labels`` as class indices for ``num_classes`` classes, or ``None``
    (``classes_of`` says whose classes they are, e.g. "the model's outputs"; ``counted``, what
    the labels are, e.g. "labels of the batch that failed").

    Floating-point labels with more than one value per sample may be class probabilities (which
    cross-entropy accepts): only one float per sample is refused.
    """
    values = (labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor)
              else np.asarray(labels))
    if not np.issubdtype(values.dtype, np.integer):
        if values.dtype != np.bool_ and (not np.issubdtype(values.dtype, np.number)
                                         or values.ndim > 1):
            return None     # probabilities per class, or something only a user's loss reads
        example = f" (e.g. {values.reshape(-1)[0].item()!r})" if values.size else ""
        return (f"must be integer class indices for the default loss (cross-entropy), got "
                f"{values.dtype} labels{example}; convert them to integers (torch.long), or "
                f"pass your own loss= to run_search (Python API) for other targets")
    flat = values.reshape(-1).astype(np.int64)
    bad = flat[((flat < 0) | (flat >= num_classes)) & (flat != IGNORED_LABEL)]
    if bad.size == 0:
        return None
    worst = int(bad.max()) if bad.max() >= num_classes else int(bad.min())
    return (f"must be class indices in [0, {num_classes}) for {num_classes} "
            f"{classes_of or 'classes (num_classes)'}, got {worst} ({bad.size} of {flat.size} "
            f"{counted} out of range); fix the labels or the number of classes")


def check_class_labels(data: DataBundle) -> None:
    """Refuse splits whose labels (read without reading the inputs) cross-entropy cannot take."""
    for split in ("train", "val", "test"):
        labels = cheap_labels(getattr(data, split))
        if labels is None or labels.size == 0:
            continue
        problem = label_problem(labels, data.num_classes)
        if problem:
            raise LabelError(f"the {split} split's labels {problem}")


__all__ = ["IGNORED_LABEL", "LabelError", "check_class_labels", "label_problem"]
