"""Pruning: criteria, granularities, masks (parametrizations) and physical channel removal."""
from __future__ import annotations

from trainers.pruning.criteria import CRITERIA, Criterion, criteria_for, get_criterion
from trainers.pruning.gradients import GradientStats, collect_gradient_stats
from trainers.pruning.granularity import GRANULARITIES, PruneMasks, nm_mask
from trainers.pruning.masks import (attach, current_masks, current_param_masks, fold, folded_copy,
                                    mask_from_scores, set_masks)
from trainers.pruning.pruner import Pruner, prune_model
from trainers.pruning.settings import PruningSettings
from trainers.pruning.structured import ChannelCoupling, shrink_model

__all__ = ["CRITERIA", "ChannelCoupling", "Criterion", "GRANULARITIES", "GradientStats",
           "PruneMasks", "Pruner", "PruningSettings", "attach", "collect_gradient_stats",
           "criteria_for", "current_masks", "current_param_masks", "fold", "folded_copy", "get_criterion",
           "mask_from_scores", "nm_mask", "prune_model", "set_masks", "shrink_model"]
