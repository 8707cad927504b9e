"""Data sets as the trainers see them: three splits plus shape facts."""
from __future__ import annotations

from dataclasses import dataclass

from torch.utils.data import Dataset


@dataclass
class DataBundle:
    """Train / validation / test splits. Selection reads ``val``; ``test`` is for reporting only."""

    train: Dataset
    val: Dataset
    test: Dataset
    num_classes: int
    input_shape: tuple[int, ...]   # one sample, without the batch dimension
    name: str = ""
