"""What sparsity the ``n:m`` granularity can apply to a layer: pure arithmetic, no torch.

N:M keeps N of every block of M weights along a layer's input dimension (its weight's second
dimension: a linear layer's inputs, a convolution's input channels per group), so the sparsity it
applies is not any number: N is a whole number in 1..M (N = 0 would prune every weight and is no
N:M pattern), and a layer with fewer than M inputs per block position (a grayscale first
convolution, a depthwise one) forms no block and stays dense. The space records this applied
value in the candidate (what the tables and duplicate detection see) and
``trainers.pruning.granularity.NM`` reads N back from it with ``nm_kept``.
"""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

NM_GRANULARITY = "n:m"


def nm_inputs(weight_shape: Sequence[int]) -> int | None:
    """The length of the dimension N:M blocks run along (None when the shape is unknown)."""
    if not weight_shape:
        return None
    return int(weight_shape[1]) if len(weight_shape) > 1 else int(weight_shape[0])


def forms_nm_block(inputs: int | None, block: int) -> bool:
    """Whether a layer with ``inputs`` inputs per block position holds one block of ``block``."""
    return inputs is None or inputs >= block


def nm_applied(kept: int, inputs: int | None, block: int) -> float:
    """The fraction of a layer's weights that keeping ``kept`` of every ``block`` removes; a last
    partial block of r weights keeps min(kept, r) (``nm_mask``). ``inputs`` None: whole blocks."""
    if inputs is None:
        return (block - kept) / block
    full, rest = divmod(inputs, block)
    return (full * (block - kept) + rest - min(kept, rest)) / inputs


def nm_kept(sparsity: float, inputs: int | None, block: int) -> int:
    """N in 1..``block`` whose applied sparsity is closest to ``sparsity`` (a tie keeps more);
    round((1 - sparsity) * block) on a layer of whole blocks, clamped so at least one is kept."""
    return min(range(block, 0, -1),
               key=lambda kept: abs(nm_applied(kept, inputs, block) - sparsity))


def nm_sparsity(sparsity: float, inputs: int | None, block: int, high: float = 1.0) -> float:
    """The sparsity N:M applies to a layer asked for ``sparsity``: 0.0 when the layer forms no
    block, else that of ``nm_kept`` (more kept where needed to stay at or below ``high``, the
    layer's upper bound in the space), rounded to 6 decimals as the space's grid values are."""
    if not forms_nm_block(inputs, block):
        return 0.0
    kept = nm_kept(sparsity, inputs, block)
    while kept < block and nm_applied(kept, inputs, block) > high + 1e-9:
        kept += 1
    return round(nm_applied(kept, inputs, block), 6)


def grid_value_for(values: Sequence[float], recorded: Mapping[str, float],
                   applied: Callable[[str, float], float]) -> float:
    """The grid value (of ``values``) from which every layer of ``recorded`` (a layer, or the
    members of a group) gets its recorded n:m sparsity (``applied(layer, value)``), the one
    nearest the first member's; rounding to N:M makes several equivalent. None fits: that value."""
    first = next(iter(recorded.values()))
    fits = [v for v in values if all(applied(n, v) == s for n, s in recorded.items())]
    return min(fits, key=lambda v: abs(v - first)) if fits else first
