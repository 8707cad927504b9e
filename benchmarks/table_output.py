"""How a benchmark hands over its table: written as CSV, printed, and the machine's load average
said with it (a figure measured on a busy machine must say so). Imported by the benchmark
scripts beside it; not a benchmark itself."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd


def save_and_print(table: pd.DataFrame, out: str | Path, digits: int = 3, *,
                   width: int = 200, when: str = "after the run") -> None:
    """Write ``table`` to ``out`` (its folder made), print it with ``digits`` decimals, then the
    1-minute load average."""
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    pd.set_option("display.width", width)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.{digits}f}"))
    print(f"load average {os.getloadavg()[0]:.2f} (1 min) {when}")
