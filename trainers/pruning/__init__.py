"""Pruning: criteria, granularities, masks (parametrizations) and physical channel removal.

Names are imported from their modules on first use (``trainers.lazy``): ``CRITERIA`` and
``PruningSettings`` need no torch.
"""
from trainers.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "calibration": ["collect_activation_stats"],
    "criteria": ["CRITERIA", "Criterion", "criteria_for", "get_criterion"],
    "gradients": ["GradientStats", "collect_gradient_stats"],
    "granularity": ["GRANULARITIES", "PruneMasks", "nm_mask"],
    "masks": ["attach", "current_masks", "current_param_masks", "fold", "folded_copy",
              "mask_from_scores", "set_masks"],
    "pruner": ["Pruner", "prune_model"],
    "settings": ["PruningSettings"],
    "structured": ["ChannelCoupling", "shrink_model"],
})
