"""Knowledge distillation from the dense reference while the pruned model trains (Hinton et al.).

The term added to the task loss is ``weight * T^2 * KL(softmax(teacher / T) || softmax(student / T))``;
the T^2 factor keeps gradient magnitudes comparable across temperatures.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                      temperature: float) -> torch.Tensor:
    """T^2 * KL(teacher_T || student_T), averaged over the batch."""
    t = float(temperature)
    return F.kl_div(F.log_softmax(student_logits / t, dim=1), F.softmax(teacher_logits / t, dim=1),
                    reduction="batchmean") * t * t


class Distillation:
    """``extra_loss`` term distilling ``teacher`` (kept frozen, in eval mode) into the model."""

    def __init__(self, teacher: nn.Module, temperature: float = 4.0, weight: float = 1.0):
        if not temperature > 0:
            raise ValueError(f"distillation temperature must be > 0, got {temperature}")
        self.teacher = teacher.eval()
        for param in self.teacher.parameters():
            param.requires_grad_(False)
        self.temperature = temperature
        self.weight = weight

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                 logits: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            teacher_logits = self.teacher(x)
        return self.weight * distillation_loss(logits, teacher_logits, self.temperature)
