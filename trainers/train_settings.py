"""One training phase's settings (the ``dense:`` and ``finetune:`` sections; no torch here)."""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class TrainSettings:
    """One training phase (the ``dense:`` and ``finetune:`` sections of the config)."""

    epochs: int = 5
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adam"
    lr_schedule: str = "cosine"       # "cosine" (decay to 0 over the phase) or "constant"

    def __post_init__(self) -> None:
        if self.epochs < 0:
            raise ValueError(f"epochs must be >= 0, got {self.epochs}")
        if not 0 < self.lr < math.inf:
            raise ValueError(f"lr must be a finite number > 0, got {self.lr}")
        if not 0 <= self.weight_decay < math.inf:
            raise ValueError(f"weight_decay must be a finite number >= 0, got {self.weight_decay}")
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be one of ['adam', 'sgd'], got '{self.optimizer}'")
        if self.lr_schedule not in ("cosine", "constant"):
            raise ValueError("lr_schedule must be one of ['cosine', 'constant'], "
                             f"got '{self.lr_schedule}'")
