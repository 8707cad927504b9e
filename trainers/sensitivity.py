"""Per-layer sensitivity of a dense reference: the accuracy each layer loses when pruned alone.

Each prunable layer alone is pruned at a grid of sparsities with the study's own pruner (data-driven
criteria read the configured scoring batches) and the validation split is evaluated, without
fine-tuning (one forward pass over the split per point); the masks are removed again before the
next point. Alongside, weight statistics per layer (norms, fraction of near-zero weights). Turning
the table into bounds, files and text is ``search.run.sensitivity``'s part.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import pandas as pd
from torch import nn

from spaces.candidate import Candidate
from trainers import method_parts
from trainers.errors import SetupError
from trainers.eval_context import EvalContext
from trainers.pruning.masks import remove_masks
from trainers.training import measure_metric

NEAR_ZERO = 0.01      # a weight is "near zero" when |w| < NEAR_ZERO * max |w| of its layer


@dataclass
class LayerSensitivity:
    """Validation accuracy per (layer, sparsity) and weight statistics per layer."""

    accuracy: pd.DataFrame          # columns: layer, sparsity, accuracy, drop
    weights: pd.DataFrame           # one row per layer (``weight_statistics``)
    dense_accuracy: float
    layers: list[str]


def weight_statistics(model: nn.Module, layer_names: Sequence[str],
                      near_zero: float = NEAR_ZERO) -> pd.DataFrame:
    """Norms and the near-zero fraction of each layer's weight."""
    modules = dict(model.named_modules())
    rows = []
    for name in layer_names:
        weight = modules[name].weight.detach().float()
        magnitude = weight.abs()
        peak = float(magnitude.max())
        rows.append({
            "layer": name, "params": weight.numel(),
            "l1_norm": float(magnitude.sum()), "l2_norm": float(weight.norm()),
            "mean_abs": float(magnitude.mean()), "std": float(weight.std()) if weight.numel() > 1
            else 0.0, "max_abs": peak,
            "near_zero_fraction": float((magnitude < near_zero * peak).float().mean())
            if peak > 0 else 1.0,
        })
    return pd.DataFrame(rows)


def measure_layer_sensitivity(context: EvalContext, *, grid: Sequence[float], criterion: str,
                              granularity: str, seed: int = 0,
                              log: Callable[[str], None] = print) -> LayerSensitivity:
    """Prune each layer of ``context``'s dense reference alone at every ``grid`` point, evaluate.

    A criterion that cannot prune at ``granularity`` raises ``SetupError`` ("sensitivity: ...").
    """
    model = method_parts.dense_model(context).eval()
    val = context.data.val

    def accuracy() -> float:
        return measure_metric(model, val, context.device, context.metric_fn)

    dense_accuracy = accuracy()
    names = [layer.name for layer in context.layers]
    rows = []
    log(f"sensitivity of {len(names)} layers at sparsities {list(grid)} "
        f"({criterion}, {granularity}, no fine-tuning) ...")
    for name in names:
        for sparsity in grid:
            candidate = Candidate(sparsity={name: sparsity}, bits={}, criterion=criterion,
                                  granularity=granularity, seed=seed)
            try:
                method_parts.make_pruner(candidate, context).step(model)
            except ValueError as exc:
                raise SetupError(f"sensitivity: {exc}") from exc
            value = accuracy()
            remove_masks(model)
            rows.append({"layer": name, "sparsity": sparsity, "accuracy": value,
                         "drop": dense_accuracy - value})
    return LayerSensitivity(pd.DataFrame(rows), weight_statistics(model, names), dense_accuracy,
                            names)
