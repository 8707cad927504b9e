"""What a study would see in a model: its layers, the work outside them and the totals, next to
``FlopCounterMode``'s count (the torch-heavy half of ``sparsity-search inspect``)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from spaces.layers import LayerInfo
from trainers.costs.flops import FLOPS_PER_MAC, count_flops
from trainers.discovery import OtherWeight, discover


@dataclass
class ModelReport:
    """One forward pass of one sample, as the cost model and the search space see it.

    ``flop_counter`` is ``FlopCounterMode``'s total with the CPU attention formula (what the dense
    count is held equal to); ``flop_counter_plain`` is ``FlopCounterMode`` as torch ships it
    (on the CPU it has no formula for ``scaled_dot_product_attention``).
    """

    layers: list[LayerInfo]
    others: list[OtherWeight]
    free_flops: int
    free_by_op: dict[str, int]
    flop_counter: int
    flop_counter_plain: int
    params_total: int

    @property
    def prunable_flops(self) -> int:
        """FLOPs of the prunable layers, as discovery counts them."""
        return FLOPS_PER_MAC * sum(layer.macs for layer in self.layers)

    @property
    def other_flops(self) -> int:
        """What ``FlopCounterMode`` counts beyond the prunable layers and the weight-free products
        (modules of other kinds, e.g. ``Conv1d``; products with parameters that are no layer's;
        layers left out of the search because their weight is tied to another module's).
        Negative would mean discovery counts work ``FlopCounterMode`` does not see."""
        return self.flop_counter - self.prunable_flops - self.free_flops

    @property
    def non_prunable_flops(self) -> int:
        """The fixed work that no pruning removes: weight-free products plus ``other_flops``."""
        return self.free_flops + self.other_flops


def inspect_model(model: nn.Module, input_shape: tuple[int, ...]) -> ModelReport:
    """The layers, unsearched weight matrices, weight-free products and FLOP totals of ``model``
    for one sample (a plain model: no masks attached)."""
    found = discover(model, tuple(input_shape))
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    example = torch.zeros((1, *input_shape), device=device)
    counted = count_flops(model, example)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as plain:
            model(example)
    finally:
        model.train(was_training)
    return ModelReport(layers=found.layers, others=found.others, free_flops=found.free_flops,
                       free_by_op=dict(found.free_by_op), flop_counter=counted,
                       flop_counter_plain=int(plain.get_total_flops()),
                       params_total=sum(p.numel() for p in model.parameters()))
