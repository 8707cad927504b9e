"""Pruning: criteria registry, masks, and the function that prunes a model for a candidate."""
from __future__ import annotations

from torch import nn

from spaces.candidate import Candidate
from trainers.pruning.criteria import CRITERIA, Criterion, get_criterion
from trainers.pruning.masks import attach, current_masks, fold, mask_from_scores


def prune_model(model: nn.Module, candidate: Candidate) -> None:
    """Score each layer with the candidate's criterion and attach masks and bit-widths."""
    criterion = get_criterion(candidate.criterion)
    modules = dict(model.named_modules())
    masks = {}
    for name, sparsity in candidate.sparsity.items():
        scores = criterion.score(modules[name], layer_name=name, seed=candidate.seed)
        masks[name] = mask_from_scores(scores, sparsity)
    attach(model, masks, candidate.bits)


__all__ = ["CRITERIA", "Criterion", "attach", "current_masks", "fold", "get_criterion",
           "mask_from_scores", "prune_model"]
