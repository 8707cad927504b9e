"""The ``data:`` section of the config (no torch here)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Data sets read by torchvision's classes are named ``torchvision:<class>``.
TORCHVISION_PREFIX = "torchvision:"


@dataclass(frozen=True)
class DataSettings:
    """The ``data:`` section of the config.

    ``name`` is a registered data set (``digits``, ``synthetic``) or one added by other modules;
    ``val_fraction`` is carved from the training split with ``split_seed``; the test split is kept
    apart and only used for reporting.
    """

    name: str = "digits"
    val_fraction: float = 0.15
    test_fraction: float = 0.25
    split_seed: int = 0
    batch_size: int = 32
    root: str | None = None
    download: bool = False
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key in ("val_fraction", "test_fraction"):
            value = getattr(self, key)
            if not 0.0 < value < 1.0:
                raise ValueError(f"data.{key} must be in (0, 1), got {value}")
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ValueError("data.val_fraction + data.test_fraction must be < 1, got "
                             f"{self.val_fraction + self.test_fraction}")
        if isinstance(self.split_seed, bool) or not isinstance(self.split_seed, int) \
                or not 0 <= self.split_seed < 2 ** 32:
            raise ValueError(f"data.split_seed must be an integer in [0, 2**32 - 1], got "
                             f"{self.split_seed!r}")
        if self.batch_size < 1:
            raise ValueError(f"data.batch_size must be >= 1, got {self.batch_size}")
