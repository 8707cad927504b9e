"""Layer groups: one sparsity value for many layers (``space.groups`` in the config).

A group is ``name: pattern``; the pattern is ``type:conv2d`` / ``type:linear`` (by layer kind) or
``regex:<expr>`` (matched with ``re.search`` against the module name, e.g. ``regex:^layer1\\.`` for a
block); a pattern without a prefix is a regex. A layer belongs to the first group (in config order)
that matches it; layers in no group keep their own sparsity value.
"""
from __future__ import annotations

import re
from typing import Mapping, Sequence

from spaces.layers import LayerInfo

KINDS = ("conv2d", "linear")


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
    expr = pattern[len("regex:"):] if pattern.startswith("regex:") else pattern
    try:
        re.compile(expr)
    except re.error as exc:
        raise ValueError(f"{field_name}.{group}: invalid regular expression '{expr}': {exc}") from exc


def matches(pattern: str, layer: LayerInfo) -> bool:
    if pattern.startswith("type:"):
        return layer.kind == pattern[len("type:"):]
    expr = pattern[len("regex:"):] if pattern.startswith("regex:") else pattern
    return re.search(expr, layer.name) is not None


def assign_groups(groups: Mapping[str, str], layers: Sequence[LayerInfo]) -> dict[str, str]:
    """Layer name -> group name for the given (searched) layers; every group must match one."""
    assigned: dict[str, str] = {}
    for group, pattern in groups.items():
        hits = [layer.name for layer in layers if layer.name not in assigned and matches(pattern, layer)]
        if not hits:
            raise ValueError(f"space.groups.{group}: pattern '{pattern}' matches no searched layer outside earlier groups "
                             f"(searched layers: {[layer.name for layer in layers]})")
        for name in hits:
            assigned[name] = group
    return assigned
