"""Device resolution: ``auto | cpu | cuda | cuda:N | mps``."""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda|cuda:\d+|mps)$")


def resolve_device(name: str = "auto") -> torch.device:
    """Turn the config's device string into a ``torch.device`` that exists on this machine."""
    import torch   # here, not at the top: the config checks names against DEVICE_PATTERN alone

    if not DEVICE_PATTERN.match(name):
        raise ValueError(f"device must be one of auto, cpu, cuda, cuda:N, mps; got '{name}'")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device '{name}' was requested but CUDA is not available here")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device 'mps' was requested but MPS is not available here")
    return torch.device(name)
