"""Masks and fake quantization applied in place around each training step.

During the search a masked layer carries a parametrization (``trainers.pruning.masks``): its
effective weight ``fake_quantize(weight * mask)`` is recomputed by ``torch.nn.utils.parametrize``
in every forward pass, which on small models costs about as much as the layer itself. A training
loop only needs the effective weight once per step, so ``InPlaceMasks`` takes the
parametrizations off for the loop (the parameters stay the same objects, so the optimizer is
untouched) and, each step, puts the effective values in the parameters before the forward pass
(``apply``) and the original values back before the optimizer step, with the gradients masked
(``restore``): what a hand-written loop does. The arithmetic is the parametrization's, operation
for operation, so the trained weights are the same to the bit. Leaving the ``with`` block puts
the parametrizations back. The masks are multiplied in the parameters' dtype (a copy made on
entering): a float tensor times a bool mask converts the mask at every product, which cost about
30% of the masking work of a step on the built-in CNN (279 -> 198 us, 2% of the step); 1.0
and 0.0 give the same values.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn
from torch.nn.utils import parametrize

from trainers.pruning.masks import MaskedQuantizedWeight, ParamMask, register


class InPlaceMasks:
    """The mask parametrizations of ``model``, applied in place per step (see the module doc).

    ``entries()`` is empty when the model has none, or any other parametrization (then the loop
    keeps the parametrized path).
    """

    def __init__(self, model: nn.Module):
        self.entries: list[tuple[nn.Module, str, nn.Module]] = []
        for module in model.modules():
            if not parametrize.is_parametrized(module):
                continue
            for name, chain in module.parametrizations.items():
                if len(chain) != 1 or not isinstance(chain[0], (MaskedQuantizedWeight, ParamMask)):
                    self.entries = []
                    return
                self.entries.append((module, name, chain[0]))
        self._saved: list[torch.Tensor] = []
        self._masks: list[torch.Tensor] = []

    def __bool__(self) -> bool:
        return bool(self.entries)

    def __enter__(self) -> "InPlaceMasks":
        for module, name, _ in self.entries:
            parametrize.remove_parametrizations(module, name, leave_parametrized=False)
        self._masks = [masking.mask.to(getattr(module, name).dtype)
                       for module, name, masking in self.entries]
        return self

    def __exit__(self, *exc: object) -> None:
        if self._saved:
            self.restore(mask_grads=False)
        for module, name, masking in self.entries:
            register(module, name, masking)

    @torch.no_grad()
    def apply(self) -> None:
        """Put the effective (masked, quantized) values in the parameters for one step."""
        self._saved = []
        for (module, name, masking), mask in zip(self.entries, self._masks):
            param = getattr(module, name)
            self._saved.append(param.data)
            param.data = masking.values(param.data, mask)

    @torch.no_grad()
    def restore(self, mask_grads: bool = True) -> None:
        """Put the original values back; mask the gradients as the parametrization's backward
        does (a pruned weight gets no gradient)."""
        for (module, name, _), mask, original in zip(self.entries, self._masks, self._saved):
            param = getattr(module, name)
            if mask_grads and param.grad is not None:
                param.grad.mul_(mask)
            param.data = original
        self._saved = []

    @contextmanager
    def applied(self) -> Iterator[None]:
        """The effective values in the parameters for a while (e.g. to measure the model: the
        same outputs as the parametrized model's), the originals back afterwards."""
        self.apply()
        try:
            yield
        finally:
            self.restore(mask_grads=False)


__all__ = ["InPlaceMasks"]
