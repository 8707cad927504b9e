"""Everything that touches an nn.Module: data, models, pruning, quantization, training, costs."""
from trainers.context import EvalContext
from trainers.evaluate import build_candidate_model, cost_metrics, evaluate

__all__ = ["EvalContext", "build_candidate_model", "cost_metrics", "evaluate"]
