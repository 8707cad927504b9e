"""The ``pruning:`` section of the config: fixed knobs of criteria, schedules and distillation.

What the search varies (criterion, granularity, schedule, regularisation strength, distillation
on/off, fine-tune epochs) lives in ``space:``; this section holds the settings that stay fixed.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PruningSettings:
    """Fixed settings of the pruning methods.

    Attributes:
        score_batches: training batches whose gradients (taylor, snip, movement) or input
            activations (wanda) feed the scores.
        gradual_steps: pruning steps of the ``gradual`` schedule (AGP, cubic).
        gradual_end: fraction of the fine-tune steps by which the final sparsity is reached.
        during_epochs: total epochs of ``during_training`` (0: the dense reference's epochs).
        prune_at: fraction of ``during_training`` epochs trained dense before the cut (0: at
            initialisation).
        reg_epochs: for ``oneshot`` with a regularisation strength > 0, epochs of penalised training
            of the dense model before the cut (counted in the trial's training cost).
        nm_block: M of the ``n:m`` granularity (N kept per block of M: ``spaces.nm_grid``).
        distill_temperature: softening temperature T of the distillation loss.
        distill_weight: weight of T^2 * KL(teacher || student) added to the task loss.
    """

    score_batches: int = 4
    gradual_steps: int = 8
    gradual_end: float = 0.75
    during_epochs: int = 0
    prune_at: float = 0.2
    reg_epochs: int = 1
    nm_block: int = 4
    distill_temperature: float = 4.0
    distill_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.score_batches < 1:
            raise ValueError(f"pruning.score_batches must be >= 1, got {self.score_batches}")
        if self.gradual_steps < 1:
            raise ValueError(f"pruning.gradual_steps must be >= 1, got {self.gradual_steps}")
        if not 0.0 < self.gradual_end <= 1.0:
            raise ValueError(f"pruning.gradual_end must be in (0, 1], got {self.gradual_end}")
        if self.during_epochs < 0:
            raise ValueError(f"pruning.during_epochs must be >= 0, got {self.during_epochs}")
        if not 0.0 <= self.prune_at < 1.0:
            raise ValueError(f"pruning.prune_at must be in [0, 1), got {self.prune_at}")
        if self.reg_epochs < 0:
            raise ValueError(f"pruning.reg_epochs must be >= 0, got {self.reg_epochs}")
        if self.nm_block < 2:
            raise ValueError(f"pruning.nm_block must be >= 2, got {self.nm_block}")
        if not self.distill_temperature > 0:
            raise ValueError(
                f"pruning.distill_temperature must be > 0, got {self.distill_temperature}")
        if self.distill_weight < 0:
            raise ValueError(f"pruning.distill_weight must be >= 0, got {self.distill_weight}")
