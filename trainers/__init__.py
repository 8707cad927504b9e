"""Everything that touches an nn.Module: data, models, pruning, quantization, training, costs."""
from trainers.eval_context import EvalContext
from trainers.trial import build_candidate_model, cost_metrics, evaluate_candidate

__all__ = ["EvalContext", "build_candidate_model", "cost_metrics", "evaluate_candidate"]
