"""Layer groups: one sparsity value for many layers (``space.groups`` in the config).

A group is ``name: pattern``; the pattern is ``type:conv2d`` / ``type:linear`` (by layer kind),
``regex:<expr>`` (matched with ``re.search`` against the module name, e.g. ``regex:^layer1\\.``
for a block) or ``each:<expr>``: a regex with a capture group that makes one group per captured value
(``block: "each:^blocks\\.(\\d+)\\."`` gives ``block[0]``, ``block[1]``, ...: one value per
transformer block); a pattern without a prefix is a regex. A layer belongs to the first group (in
config order) that matches it; layers in no group keep their own sparsity value.

For transformers (projections named as ``SplitAttention`` names them; ``blocks.<i>`` is
``tiny_gpt``'s block, ``encoder.layers.encoder_layer_<i>`` a torchvision ViT's):
``regex:\\.q_proj$`` (every query projection), ``each:^blocks\\.(\\d+)\\.`` (one value per block),
``each:^blocks\\.(\\d+)\\.attention\\.[qkv]_proj$`` (one value for each block's q, k and v: with
channel granularity, that block's share of heads removed), ``regex:\\.mlp\\.`` (every MLP layer).
"""
from __future__ import annotations

import re
from typing import Mapping, Sequence

from spaces.layers import LayerInfo

KINDS = ("conv2d", "linear")
EACH = "each:"


def check_pattern(group: str, pattern: str, field_name: str = "space.groups") -> None:
    """Raise ValueError naming the group (``<field_name>.<group>``) when ``pattern`` is malformed."""
    if not isinstance(pattern, str) or not pattern:
        raise ValueError(f"{field_name}.{group} must be a pattern string like 'type:conv2d' or "
                         f"'regex:^features\\.', got {pattern!r}")
    if pattern.startswith("type:"):
        kind = pattern[len("type:"):]
        if kind not in KINDS:
            raise ValueError(f"{field_name}.{group}: layer type must be one of {list(KINDS)}, "
                             f"got '{kind}'")
        return
    expr = _expression(pattern)
    try:
        compiled = re.compile(expr)
    except re.error as exc:
        raise ValueError(f"{field_name}.{group}: invalid regular expression '{expr}': "
                         f"{exc}") from exc
    if pattern.startswith(EACH) and compiled.groups < 1:
        raise ValueError(f"{field_name}.{group}: an 'each:' pattern needs a capture group naming "
                         f"each group, e.g. 'each:^blocks\\.(\\d+)\\.', got '{pattern}'")


def _expression(pattern: str) -> str:
    for prefix in ("regex:", EACH):
        if pattern.startswith(prefix):
            return pattern[len(prefix):]
    return pattern


def matches(pattern: str, layer: LayerInfo) -> bool:
    if pattern.startswith("type:"):
        return layer.kind == pattern[len("type:"):]
    return re.search(_expression(pattern), layer.name) is not None


def group_name(group: str, pattern: str, layer: LayerInfo) -> str:
    """The group a matching layer joins: ``group``, or ``group[<captured>]`` for ``each:``."""
    if not pattern.startswith(EACH):
        return group
    found = re.search(_expression(pattern), layer.name)
    return f"{group}[{'.'.join(part or '' for part in found.groups())}]"


def assign_groups(groups: Mapping[str, str], layers: Sequence[LayerInfo]) -> dict[str, str]:
    """Layer name -> group name for the given (searched) layers; every group must match one."""
    assigned: dict[str, str] = {}
    for group, pattern in groups.items():
        hits = [layer for layer in layers if layer.name not in assigned and matches(pattern, layer)]
        if not hits:
            prefix = re.match(r"^([A-Za-z_]+):", pattern)
            hint = (f"; '{prefix.group(1)}:' is no pattern kind (type:, regex:, each: or a plain "
                    f"regular expression)" if prefix and not pattern.startswith(
                        ("type:", "regex:", EACH)) else "")
            raise ValueError(f"space.groups.{group}: pattern '{pattern}' matches no searched "
                             f"layer outside earlier groups (searched layers: "
                             f"{[layer.name for layer in layers]}){hint}")
        for layer in hits:
            assigned[layer.name] = group_name(group, pattern, layer)
    return assigned


def group_sparsity(names: Sequence[str], sparsity: Mapping[str, float],
                   layers: Mapping[str, LayerInfo]) -> float:
    """One value for layers searched together: a single layer's own, else the mean weighted by
    their weights, so a rule's per-layer values keep removing the same number of weights."""
    if len(names) == 1:
        return sparsity.get(names[0], 0.0)
    total = sum(layers[n].params for n in names)
    return sum(sparsity.get(n, 0.0) * layers[n].params for n in names) / max(1, total)
