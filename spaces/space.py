"""The search space: which layers, which sparsities, bits and methods; a define-by-run ``suggest``.

Pure data and arithmetic: ``trial`` is anything with Optuna's ``suggest_float`` /
``suggest_categorical`` (an ``optuna.Trial``, also what Ray Tune's ``OptunaSearch`` passes to a
define-by-run function), so both backends share this one function.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Protocol, Sequence

from spaces.candidate import BITS_PREFIX, SPARSITY_PREFIX, Candidate
from spaces.layers import LayerInfo

CLASSIFIER_POLICIES = ("exclude", "cap", "include")


class TrialLike(Protocol):
    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None,
                      log: bool = False) -> float: ...

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any: ...


@dataclass(frozen=True)
class SparsityRange:
    """Per-layer sparsity bounds and grid step (fraction of weights or channels removed)."""

    low: float = 0.0
    high: float = 0.95
    step: float = 0.05

    def __post_init__(self) -> None:
        if not 0.0 <= self.low < 1.0:
            raise ValueError(f"space.sparsity.low must be in [0, 1), got {self.low}")
        if not 0.0 <= self.high < 1.0:
            raise ValueError(f"space.sparsity.high must be in [0, 1), got {self.high}")
        if self.low > self.high:
            raise ValueError(
                f"space.sparsity: low <= high must hold, got low={self.low}, high={self.high}")
        if not 0.0 < self.step <= 1.0:
            raise ValueError(f"space.sparsity.step must be in (0, 1], got {self.step}")


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

    def __post_init__(self) -> None:
        for value in self.bits:
            if value not in (2, 3, 4, 5, 6, 7, 8, 16, 32):
                raise ValueError(
                    f"space.bits must be values from [2, 3, 4, 5, 6, 7, 8, 16, 32], got {value}")
        for name in ("bits", "criteria", "granularities", "schedules"):
            if len(getattr(self, name)) == 0:
                raise ValueError(f"space.{name} must list at least one value, got []")
        if self.classifier not in CLASSIFIER_POLICIES:
            raise ValueError(f"space.classifier must be one of {list(CLASSIFIER_POLICIES)}, "
                             f"got '{self.classifier}'")
        if not 0.0 <= self.classifier_max_sparsity < 1.0:
            raise ValueError("space.classifier_max_sparsity must be in [0, 1), "
                             f"got {self.classifier_max_sparsity}")


class SearchSpace:
    """Per-layer sparsity and bits plus method choices over a fixed list of layers."""

    def __init__(self, layers: Sequence[LayerInfo], settings: SpaceSettings, seed: int = 0):
        if not layers:
            raise ValueError("search space is empty: the model has no prunable Conv2d/Linear layer")
        self.layers = tuple(layers)
        self.settings = settings
        self.seed = seed
        self._sparsity_bounds = {layer.name: self._bounds_for(layer) for layer in self.layers}

    def _bounds_for(self, layer: LayerInfo) -> tuple[float, float]:
        rng = self.settings.sparsity
        if layer.is_classifier and self.settings.classifier == "exclude":
            return (0.0, 0.0)
        if layer.is_classifier and self.settings.classifier == "cap":
            return (rng.low, min(rng.high, self.settings.classifier_max_sparsity))
        return (rng.low, rng.high)

    @property
    def layer_names(self) -> list[str]:
        return [layer.name for layer in self.layers]

    def searched_layers(self) -> list[str]:
        """Layers whose sparsity is a search dimension (excluded ones stay dense)."""
        return [n for n, (lo, hi) in self._sparsity_bounds.items() if hi > lo]

    def suggest(self, trial: TrialLike) -> Candidate:
        """Draw one candidate, define-by-run (the same for the Optuna and Ray backends)."""
        step = self.settings.sparsity.step
        sparsity: dict[str, float] = {}
        for name, (low, high) in self._sparsity_bounds.items():
            if high > low:
                high = round(low + step * round((high - low) / step), 10)
                value = trial.suggest_float(SPARSITY_PREFIX + name, low, high, step=step)
            else:
                value = low
            sparsity[name] = round(float(value), 6)
        bits = {name: int(self._choose(trial, BITS_PREFIX + name, self.settings.bits))
                for name in self.layer_names}
        return Candidate(
            sparsity=sparsity,
            bits=bits,
            criterion=self._choose(trial, "criterion", self.settings.criteria),
            granularity=self._choose(trial, "granularity", self.settings.granularities),
            schedule=self._choose(trial, "schedule", self.settings.schedules),
            seed=self.seed,
        )

    @staticmethod
    def _choose(trial: TrialLike, name: str, choices: Sequence[Any]) -> Any:
        if len(choices) == 1:
            return choices[0]
        return trial.suggest_categorical(name, list(choices))

    def from_params(self, params: Mapping[str, Any]) -> Candidate:
        """Rebuild the candidate of a stored trial from its Optuna parameters."""
        return self.suggest(_FixedTrial(params))

    def dense_candidate(self) -> Candidate:
        """All layers dense at 32 bits: the reference point, enqueued as the first trial."""
        return self.uniform_candidate(0.0, 32)

    def uniform_candidate(self, sparsity: float, bits: int, criterion: str = "magnitude") -> Candidate:
        """The same sparsity in every searched layer and the same bits everywhere (hand-made sweep)."""
        params = {SPARSITY_PREFIX + n: sparsity for n in self.searched_layers()}
        params.update({BITS_PREFIX + n: bits for n in self.layer_names})
        if criterion in self.settings.criteria:
            params["criterion"] = criterion
        return self.from_params(self._closest(params))

    def _closest(self, params: dict[str, Any]) -> dict[str, Any]:
        """Snap enqueued values to what the space can draw (bits and sparsity)."""
        out = dict(params)
        for key, value in params.items():
            if key.startswith(BITS_PREFIX) and value not in self.settings.bits:
                out[key] = min(self.settings.bits, key=lambda b: (abs(b - value), -b))
            if key.startswith(SPARSITY_PREFIX):
                low, high = self._sparsity_bounds[key[len(SPARSITY_PREFIX):]]
                step = self.settings.sparsity.step
                snapped = low + step * round((min(max(value, low), high) - low) / step)
                out[key] = round(min(snapped, high), 10)
        return out

    def to_params(self, candidate: Candidate) -> dict[str, Any]:
        """The Optuna parameters that would make ``suggest`` return ``candidate`` (for enqueueing)."""
        params: dict[str, Any] = {}
        for name in self.searched_layers():
            params[SPARSITY_PREFIX + name] = candidate.sparsity.get(name, 0.0)
        if len(self.settings.bits) > 1:
            params.update({BITS_PREFIX + n: candidate.bits.get(n, 32) for n in self.layer_names})
        for key, choices in (("criterion", self.settings.criteria),
                             ("granularity", self.settings.granularities),
                             ("schedule", self.settings.schedules)):
            if len(choices) > 1:
                params[key] = getattr(candidate, key)
        return params

    def signature(self) -> dict[str, Any]:
        """A JSON-able description; a study resumed with a different one is refused."""
        return {
            "layers": [layer.to_dict() for layer in self.layers],
            "settings": _jsonable(asdict(self.settings)),
            "seed": self.seed,
        }


class _FixedTrial:
    """Replays stored parameters through ``suggest`` (missing ones raise a clear error)."""

    def __init__(self, params: Mapping[str, Any]):
        self.params = params

    def _get(self, name: str) -> Any:
        if name not in self.params:
            raise ValueError(f"stored parameters have no value for '{name}'; "
                             "was this study created with a different search space?")
        return self.params[name]

    def suggest_float(self, name, low, high, *, step=None, log=False):
        return float(self._get(name))

    def suggest_categorical(self, name, choices):
        return self._get(name)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value
