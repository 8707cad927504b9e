"""The ``model:`` section of the config (no torch here)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# torchvision classification models are named ``torchvision:<arch>``.
TORCHVISION_PREFIX = "torchvision:"


@dataclass(frozen=True)
class ModelSettings:
    """The ``model:`` section: a registered name and keyword options for its factory."""

    name: str = "cnn"
    options: dict[str, Any] = field(default_factory=dict)
