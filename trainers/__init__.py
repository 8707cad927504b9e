"""Everything that touches an nn.Module: data, models, pruning, quantization, training, costs.

Names are imported from their modules on first use (``trainers.lazy``), so reading a torch-free
table or settings class of a subpackage does not import torch.
"""
from trainers.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "eval_context": ["EvalContext"],
    "trial": ["build_candidate_model", "cost_metrics", "evaluate_candidate"],
})
