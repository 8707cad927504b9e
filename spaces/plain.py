"""Plain JSON data from whatever the project stores or prints (one function, used by the space's
stored signature and the front's JSON form)."""
from __future__ import annotations

import math
from typing import Any


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON data: mappings and sequences as dicts and lists, numpy scalars as
    Python numbers, non-finite floats as ``None`` (JSON has no NaN)."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
