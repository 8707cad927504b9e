"""The search space: which layers, which sparsities, bits and methods; a define-by-run ``suggest``.

Pure data and arithmetic: ``trial`` is anything with Optuna's ``suggest_float`` /
``suggest_categorical`` (an ``optuna.Trial``, also what Ray Tune's ``OptunaSearch`` passes to a
define-by-run function), so both backends share this one function.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Protocol, Sequence

from spaces.candidate import BITS_PREFIX, SPARSITY_PREFIX, Candidate
from spaces.groups import assign_groups, check_pattern
from spaces.layers import LayerInfo

GROUP_PREFIX = "group_sparsity."
# Candidate.options keys and their neutral values (left out of a candidate when neutral).
OPTION_NEUTRAL = {"reg": 0.0, "distill": False}

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
    # Regularisation strengths (L1, or group-L2 for channels) to choose from; 0 = off.
    regularization: tuple[float, ...] = (0.0,)
    # Distillation from the dense reference on / off (list both to search it).
    distillation: tuple[bool, ...] = (False,)
    # Fine-tune epochs to choose from; empty = the ``finetune.epochs`` of the config.
    finetune_epochs: tuple[int, ...] = ()
    # Layer groups sharing one sparsity value: name -> 'type:conv2d' | 'regex:<expr>'.
    groups: dict[str, str] = field(default_factory=dict)

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


class SearchSpace:
    """Per-layer sparsity and bits plus method choices over a fixed list of layers."""

    def __init__(self, layers: Sequence[LayerInfo], settings: SpaceSettings, seed: int = 0,
                 criteria_by_granularity: Mapping[str, Sequence[str]] | None = None):
        """``criteria_by_granularity`` restricts the criteria drawn for each granularity (e.g.
        ``fpgm`` only with ``channel``); by default every criterion goes with every granularity."""
        if not layers:
            raise ValueError("search space is empty: the model has no prunable Conv2d/Linear layer")
        self.layers = tuple(layers)
        self.settings = settings
        self.seed = seed
        self._sparsity_bounds = {layer.name: self._bounds_for(layer) for layer in self.layers}
        self._criteria = {g: [c for c in (criteria_by_granularity or {}).get(g, settings.criteria)
                              if c in settings.criteria]
                          for g in settings.granularities}
        for granularity, allowed in self._criteria.items():
            if not allowed:
                raise ValueError(f"granularity '{granularity}' has no usable criterion among "
                                 f"space.criteria {list(settings.criteria)}")
        searched = [layer for layer in self.layers if not layer.is_classifier
                    and self._sparsity_bounds[layer.name][1] > self._sparsity_bounds[layer.name][0]]
        self._group_of = assign_groups(settings.groups, searched)

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
        drawn_groups: dict[str, float] = {}
        for name, (low, high) in self._sparsity_bounds.items():
            group = self._group_of.get(name)
            if group is not None and group in drawn_groups:
                value = drawn_groups[group]
            elif high > low:
                high = round(low + step * round((high - low) / step), 10)
                key = GROUP_PREFIX + group if group is not None else SPARSITY_PREFIX + name
                value = trial.suggest_float(key, low, high, step=step)
            else:
                value = low
            if group is not None:
                drawn_groups[group] = value
            sparsity[name] = round(float(value), 6)
        bits = {name: int(self._choose(trial, BITS_PREFIX + name, self.settings.bits))
                for name in self.layer_names}
        granularity = self._choose(trial, "granularity", self.settings.granularities)
        criterion = self._choose(trial, self._criterion_key(granularity), self._criteria[granularity])
        schedule = self._choose(trial, "schedule", self.settings.schedules)
        options: dict[str, Any] = {}
        reg = float(self._choose(trial, "reg", self.settings.regularization))
        distill = bool(self._choose(trial, "distill", self.settings.distillation))
        if reg != OPTION_NEUTRAL["reg"]:
            options["reg"] = reg
        if distill != OPTION_NEUTRAL["distill"]:
            options["distill"] = distill
        if self.settings.finetune_epochs:
            options["finetune_epochs"] = int(self._choose(trial, "finetune_epochs",
                                                          self.settings.finetune_epochs))
        return Candidate(sparsity=sparsity, bits=bits, criterion=criterion,
                         granularity=granularity, schedule=schedule, seed=self.seed,
                         options=options)

    def _criterion_key(self, granularity: str) -> str:
        """``criterion``, or ``criterion.<granularity>`` when the allowed criteria depend on it."""
        if len(self.settings.granularities) == 1:
            return "criterion"
        return f"criterion.{granularity}"

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
        """The same sparsity in every searched layer and the same bits everywhere (hand-made sweep),
        with the first listed granularity, schedule and options."""
        params = self._default_params()
        for name in self.searched_layers():
            group = self._group_of.get(name)
            params[GROUP_PREFIX + group if group else SPARSITY_PREFIX + name] = sparsity
        params.update({BITS_PREFIX + n: bits for n in self.layer_names})
        granularity = self.settings.granularities[0]
        if criterion in self._criteria[granularity]:
            params[self._criterion_key(granularity)] = criterion
        return self.from_params(self._closest(params))

    def _default_params(self) -> dict[str, Any]:
        """The first choice of every categorical dimension."""
        granularity = self.settings.granularities[0]
        params: dict[str, Any] = {
            "granularity": granularity,
            self._criterion_key(granularity): self._criteria[granularity][0],
            "schedule": self.settings.schedules[0],
            "reg": self.settings.regularization[0],
            "distill": self.settings.distillation[0],
        }
        if self.settings.finetune_epochs:
            params["finetune_epochs"] = self.settings.finetune_epochs[0]
        return params

    def _group_bounds(self, group: str) -> tuple[float, float]:
        name = next(n for n, g in self._group_of.items() if g == group)
        return self._sparsity_bounds[name]

    def _closest(self, params: dict[str, Any]) -> dict[str, Any]:
        """Snap enqueued values to what the space can draw (bits and sparsity)."""
        out = dict(params)
        step = self.settings.sparsity.step
        for key, value in params.items():
            if key.startswith(BITS_PREFIX) and value not in self.settings.bits:
                out[key] = min(self.settings.bits, key=lambda b: (abs(b - value), -b))
            if key.startswith(SPARSITY_PREFIX) or key.startswith(GROUP_PREFIX):
                if key.startswith(GROUP_PREFIX):
                    low, high = self._group_bounds(key[len(GROUP_PREFIX):])
                else:
                    low, high = self._sparsity_bounds[key[len(SPARSITY_PREFIX):]]
                snapped = low + step * round((min(max(value, low), high) - low) / step)
                out[key] = round(min(snapped, high), 10)
        return out

    def to_params(self, candidate: Candidate) -> dict[str, Any]:
        """The Optuna parameters that would make ``suggest`` return ``candidate`` (for enqueueing)."""
        params: dict[str, Any] = {}
        for name in self.searched_layers():
            group = self._group_of.get(name)
            key = GROUP_PREFIX + group if group else SPARSITY_PREFIX + name
            params.setdefault(key, candidate.sparsity.get(name, 0.0))
        if len(self.settings.bits) > 1:
            params.update({BITS_PREFIX + n: candidate.bits.get(n, 32) for n in self.layer_names})
        if len(self.settings.granularities) > 1:
            params["granularity"] = candidate.granularity
        if len(self._criteria.get(candidate.granularity, ())) > 1:
            params[self._criterion_key(candidate.granularity)] = candidate.criterion
        choices = {"schedule": (self.settings.schedules, candidate.schedule),
                   "reg": (self.settings.regularization,
                           candidate.options.get("reg", OPTION_NEUTRAL["reg"])),
                   "distill": (self.settings.distillation,
                               candidate.options.get("distill", OPTION_NEUTRAL["distill"])),
                   "finetune_epochs": (self.settings.finetune_epochs,
                                       candidate.options.get("finetune_epochs"))}
        for key, (values, value) in choices.items():
            if len(values) > 1:
                params[key] = value
        return params

    def signature(self) -> dict[str, Any]:
        """A JSON-able description; a study resumed with a different one is refused."""
        return {
            "layers": [layer.to_dict() for layer in self.layers],
            "settings": _jsonable(asdict(self.settings)),
            "seed": self.seed,
            "criteria_by_granularity": {g: list(c) for g, c in self._criteria.items()},
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
