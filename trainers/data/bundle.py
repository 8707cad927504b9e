"""Data sets as the trainers see them: three splits plus shape facts and how inputs were made."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from torch.utils.data import Dataset

from trainers.errors import SetupError

UNKNOWN = ("unknown: the data came from user code that did not declare its preprocessing "
           "(pass preprocessing=... to run_search, or return it from the data factory); feed "
           "the model inputs prepared exactly as that code prepared them")


def unknown_preprocessing() -> dict[str, Any]:
    return {"known": False, "description": UNKNOWN}


def declared_preprocessing(value: str | Mapping[str, Any] | None) -> dict[str, Any]:
    """What a user declared (a sentence, or a mapping with at least ``description``), or
    ``unknown`` said plainly when nothing was declared."""
    if value is None:
        return unknown_preprocessing()
    if isinstance(value, str):
        return {"known": True, "description": value, "declared_by": "user"}
    record = dict(value)
    if not isinstance(record.get("description"), str):
        raise SetupError(f"preprocessing must be a string or a mapping with a 'description' "
                         f"string, got {value!r}")
    return {"known": True, **record, "declared_by": "user"}


def scaled_preprocessing(description: str, raw: str, divide_by: float, mean: Sequence[float],
                         std: Sequence[float], **extra: Any) -> dict[str, Any]:
    """Inputs made as ``x = (raw / divide_by - mean) / std`` per channel (channels first)."""
    return {"known": True, "description": description, "raw": raw,
            "formula": "x = (raw / divide_by - mean) / std, per channel, channels first",
            "divide_by": float(divide_by), "mean": [float(m) for m in mean],
            "std": [float(s) for s in std], **extra}


@dataclass
class DataBundle:
    """Train / validation / test splits. Selection reads ``val``; ``test`` is for reporting only.

    ``preprocessing`` says how a raw input becomes what the model reads (recorded in an export's
    manifest: a model fed differently-scaled inputs scores far below its recorded accuracy).
    """

    train: Dataset
    val: Dataset
    test: Dataset
    num_classes: int
    input_shape: tuple[int, ...]   # one sample, without the batch dimension
    name: str = ""
    preprocessing: dict[str, Any] = field(default_factory=unknown_preprocessing)
