"""One point of the search space, serialisable to and from a flat dict."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

SPARSITY_PREFIX = "sparsity."
BITS_PREFIX = "bits."
SCALAR_FIELDS = ("criterion", "granularity", "schedule", "seed")


@dataclass(frozen=True)
class Candidate:
    """Per-layer sparsity and bit-widths plus the pruning method.

    ``sparsity[layer]`` is the fraction of weights (or channels, for structured granularities)
    removed; ``bits[layer]`` is the weight bit-width, 32 meaning float (no quantization).
    ``options`` holds the method's extra searchable settings (e.g. regularisation strength).
    """

    sparsity: Mapping[str, float]
    bits: Mapping[str, int]
    criterion: str = "magnitude"
    granularity: str = "unstructured"
    schedule: str = "oneshot"
    seed: int = 0
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, value in self.sparsity.items():
            if not 0.0 <= float(value) < 1.0:
                raise ValueError(f"sparsity for '{name}' must be in [0, 1), got {value}")
        for name, value in self.bits.items():
            if int(value) < 1 or int(value) > 32:
                raise ValueError(f"bits for '{name}' must be in [1, 32], got {value}")
        # Copy into plain dicts (layer order kept: execution order reads best in tables).
        object.__setattr__(self, "sparsity", {k: float(v) for k, v in self.sparsity.items()})
        object.__setattr__(self, "bits", {k: int(v) for k, v in self.bits.items()})
        object.__setattr__(self, "options", dict(self.options))

    def to_flat_dict(self) -> dict[str, Any]:
        """Flat ``{"sparsity.<layer>": s, "bits.<layer>": b, "criterion": ..., ...}``."""
        flat: dict[str, Any] = {}
        for name, value in self.sparsity.items():
            flat[SPARSITY_PREFIX + name] = value
        for name, value in self.bits.items():
            flat[BITS_PREFIX + name] = value
        for key in SCALAR_FIELDS:
            flat[key] = getattr(self, key)
        for key, value in self.options.items():
            flat["option." + key] = value
        return flat

    @classmethod
    def from_flat_dict(cls, flat: Mapping[str, Any]) -> "Candidate":
        sparsity: dict[str, float] = {}
        bits: dict[str, int] = {}
        options: dict[str, Any] = {}
        scalars: dict[str, Any] = {}
        for key, value in flat.items():
            if key.startswith(SPARSITY_PREFIX):
                sparsity[key[len(SPARSITY_PREFIX):]] = float(value)
            elif key.startswith(BITS_PREFIX):
                bits[key[len(BITS_PREFIX):]] = int(value)
            elif key.startswith("option."):
                options[key[len("option."):]] = value
            elif key in SCALAR_FIELDS:
                scalars[key] = int(value) if key == "seed" else str(value)
            else:
                raise ValueError(
                    f"unknown candidate key '{key}': expected 'sparsity.<layer>', 'bits.<layer>', "
                    f"'option.<name>' or one of {list(SCALAR_FIELDS)}"
                )
        return cls(sparsity=sparsity, bits=bits, options=options, **scalars)

    def density(self, layer: str) -> float:
        return 1.0 - self.sparsity.get(layer, 0.0)
