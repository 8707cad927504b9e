"""What the user lets the search vary (the ``space:`` section of the config) and its stored form."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Mapping

from spaces.groups import check_pattern
from spaces.plain import jsonable
from spaces.sparsity_range import SparsityRange

CLASSIFIER_POLICIES = ("exclude", "cap", "include")
PARAMETRIZATIONS = ("per_layer", "global_offset")
BIT_WIDTHS = (2, 3, 4, 5, 6, 7, 8, 16, 32)   # what fake quantization offers (32: float)


@dataclass(frozen=True)
class SpaceSettings:
    """What the user lets the search vary (the ``space:`` section of the config)."""

    sparsity: SparsityRange = field(default_factory=SparsityRange)
    bits: tuple[int, ...] = (2, 4, 8, 16, 32)
    criteria: tuple[str, ...] = ("magnitude", "random")
    granularities: tuple[str, ...] = ("unstructured",)
    schedules: tuple[str, ...] = ("oneshot",)
    classifier: str = "exclude"
    classifier_max_sparsity: float = 0.5
    # Regularisation strengths (L1, or group-L2 for channels) to choose from; 0 = off.
    regularization: tuple[float, ...] = (0.0,)
    # Distillation from the dense reference on / off (list both to search it).
    distillation: tuple[bool, ...] = (False,)
    # Fine-tune epochs to choose from; empty = the ``finetune.epochs`` of the config.
    finetune_epochs: tuple[int, ...] = ()
    # Layer groups sharing one sparsity value: name -> 'type:conv2d' | 'regex:<expr>' |
    # 'each:<expr with a capture group>' (one group per captured value).
    groups: dict[str, str] = field(default_factory=dict)
    # How per-layer sparsity becomes Optuna parameters: per_layer (one value each) or
    # global_offset (one global value + an offset per layer within max_offset; spaces/offsets.py).
    parametrization: str = "per_layer"
    max_offset: float = 1.0
    # Per-layer upper bounds on sparsity: layer name (exact) or pattern as in ``groups`` -> bound.
    max_sparsity: dict[str, float] = field(default_factory=dict)
    # Tolerated accuracy drop: per-layer upper bounds from the study's sensitivity analysis
    # (measured once when missing), merged into ``max_sparsity``. None = off.
    sensitivity_max_drop: float | None = None
    # Bound each layer by what it must keep instead of by one flat ``sparsity.high``: at least
    # this many weights per output unit (row / output channel) survive, so a 235k-weight layer
    # may go far beyond 0.99 while a small one stops earlier. None = off (``sparsity.high``).
    min_kept_per_output: float | None = None

    def __post_init__(self) -> None:
        if self.min_kept_per_output is not None and \
                not 0 < self.min_kept_per_output < math.inf:
            raise ValueError("space.min_kept_per_output must be a finite number > 0 (or null), "
                             f"got {self.min_kept_per_output}")
        for value in self.bits:
            if value not in BIT_WIDTHS:
                raise ValueError(f"space.bits must be values from {list(BIT_WIDTHS)}, got {value}")
        for name in ("bits", "criteria", "granularities", "schedules"):
            values = list(getattr(self, name))
            if len(values) == 0:
                raise ValueError(f"space.{name} must list at least one value, got []")
            if len(set(values)) < len(values):   # a repeated choice is drawn more often
                raise ValueError(f"space.{name} must list each value once, got {values}")
        if self.classifier not in CLASSIFIER_POLICIES:
            raise ValueError(f"space.classifier must be one of {list(CLASSIFIER_POLICIES)}, "
                             f"got '{self.classifier}'")
        if not 0.0 <= self.classifier_max_sparsity < 1.0:
            raise ValueError("space.classifier_max_sparsity must be in [0, 1), "
                             f"got {self.classifier_max_sparsity}")
        for name in ("regularization", "distillation"):
            if len(getattr(self, name)) == 0:
                raise ValueError(f"space.{name} must list at least one value, got []")
        for value in self.regularization:
            if not value >= 0.0:
                raise ValueError(f"space.regularization strengths must be >= 0, got {value}")
        for value in self.finetune_epochs:
            if value < 0:
                raise ValueError(f"space.finetune_epochs must be >= 0, got {value}")
        for group, pattern in self.groups.items():
            check_pattern(group, pattern)
        for key, bound in self.max_sparsity.items():
            if not isinstance(bound, (int, float)) or not 0.0 <= bound < 1.0:
                raise ValueError(f"space.max_sparsity.{key} must be in [0, 1), got {bound!r}")
            check_pattern(key, key, field_name="space.max_sparsity")
        if self.parametrization not in PARAMETRIZATIONS:
            raise ValueError(f"space.parametrization must be one of {list(PARAMETRIZATIONS)}, "
                             f"got '{self.parametrization}'")
        if not 0.0 <= self.max_offset <= 3.0:
            raise ValueError(f"space.max_offset must be in [0, 3] (units of the sampled "
                             f"variable), got {self.max_offset}")
        drop = self.sensitivity_max_drop
        if drop is not None and not 0.0 <= drop < 1.0:
            raise ValueError(f"space.sensitivity_max_drop must be in [0, 1) (an accuracy drop, "
                             f"e.g. 0.02 = two points) or null, got {drop}")

    def with_max_sparsity(self, bounds: Mapping[str, float]) -> "SpaceSettings":
        """These settings with ``bounds`` ({layer name: bound}) merged into ``max_sparsity``
        (the tighter bound wins; merging the same bounds again changes nothing)."""
        merged = dict(self.max_sparsity)
        for name, bound in bounds.items():
            merged[name] = min(float(bound), merged.get(name, 1.0))
        return replace(self, max_sparsity=merged)


def settings_signature(settings: SpaceSettings) -> dict[str, Any]:
    """The JSON-able form of space settings stored with a study."""
    return jsonable(asdict(settings))

