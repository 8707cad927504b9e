"""How a front is printed: its columns, accuracy intervals and display floor (no pandas, no
torch: the command-line parser reads ``DEFAULT_FLOOR``).

Near-chance models are Pareto-optimal (nothing cheaper exists) but rarely what anyone wants to
read first, so the printed front starts at an accuracy floor relative to the dense reference.
"""
from __future__ import annotations

from dataclasses import dataclass

DEFAULT_FLOOR = 0.10


@dataclass(frozen=True)
class FrontDisplay:
    """How a front is printed besides its points.

    ``metrics``: the objectives (a column for each one without a headline column);
    ``val_samples``: the n of the accuracy intervals (``None``: no interval, no noise note);
    ``cost``: the cost in which the noise note reads "cheaper";
    ``dense_accuracy`` and ``floor``: the printed forms show the points with accuracy >=
    ``dense_accuracy - floor`` (either ``None``: every point); ``metric``: the study's selection
    metric, named in the headings.
    """

    metrics: tuple[str, ...] = ()
    val_samples: int | None = None
    cost: str | None = None
    dense_accuracy: float | None = None
    floor: float | None = DEFAULT_FLOOR
    metric: str = "accuracy"      # the study's selection metric (the accuracy column holds it)

    @property
    def threshold(self) -> float | None:
        """The lowest accuracy shown (``None``: no floor, or one at or below 0)."""
        if self.dense_accuracy is None or self.floor is None:
            return None
        lowest = self.dense_accuracy - self.floor
        return lowest if lowest > 0 else None
