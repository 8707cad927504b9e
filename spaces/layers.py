"""Description of one prunable layer: pure data, no torch."""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class LayerInfo:
    """A prunable layer as the search space sees it.

    Attributes:
        name: fully-qualified module name, e.g. ``"features.3"``.
        kind: ``"conv2d"`` or ``"linear"``.
        weight_shape: shape of the layer's weight tensor.
        params: number of weight parameters (bias excluded).
        macs: dense multiply-accumulates per sample.
        is_classifier: True for the layer that produces the model's output.
        in_elems, out_elems: input / output activation elements per sample (memory traffic).
    """

    name: str
    kind: str
    weight_shape: tuple[int, ...]
    params: int
    macs: int
    is_classifier: bool = False
    in_elems: int = 0
    out_elems: int = 0

    @property
    def out_channels(self) -> int:
        return int(self.weight_shape[0])

    def to_dict(self) -> dict:
        data = asdict(self)
        data["weight_shape"] = list(self.weight_shape)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "LayerInfo":
        return cls(**{**data, "weight_shape": tuple(data["weight_shape"])})
