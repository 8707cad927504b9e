"""The search space: which layers, which sparsities, bits and methods; a define-by-run ``suggest``.

Pure data and arithmetic: ``trial`` is anything with Optuna's ``suggest_float`` /
``suggest_categorical`` (an ``optuna.Trial``, also what Ray Tune's ``OptunaSearch`` passes to a
define-by-run function), so both backends share this one function.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Mapping, Protocol, Sequence

from spaces.candidate import BITS_PREFIX, SPARSITY_PREFIX, Candidate
from spaces.groups import assign_groups, check_pattern, matches
from spaces.layers import LayerInfo
from spaces.offsets import GlobalOffset

# Candidate.options keys and their neutral values (left out of a candidate when neutral).
OPTION_NEUTRAL = {"reg": 0.0, "distill": False}

CLASSIFIER_POLICIES = ("exclude", "cap", "include")
PARAMETRIZATIONS = ("per_layer", "global_offset")


class TrialLike(Protocol):
    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None,
                      log: bool = False) -> float: ...

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any: ...


SPARSITY_SCALES = ("log_density", "linear")
LOG_DENSITY_PREFIX = "log_density."


@dataclass(frozen=True)
class SparsityRange:
    """Per-layer sparsity bounds and how they are sampled.

    ``scale: log_density`` (default) draws log10 of the density (1 - sparsity) on a grid of
    ``log_step``, so sparsities 0.9, 0.99 and 0.999 are as reachable as 0.5 (uniform sampling in
    [0, 0.99] almost never visits >= 0.98, where the smallest good models of large layers are).
    ``scale: linear`` draws the sparsity itself on a grid of ``step``.
    """

    low: float = 0.0
    high: float = 0.99
    step: float = 0.05
    scale: str = "log_density"
    log_step: float = 0.05

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
        if self.scale not in SPARSITY_SCALES:
            raise ValueError(f"space.sparsity.scale must be one of {list(SPARSITY_SCALES)}, "
                             f"got '{self.scale}'")
        if not 0.0 < self.log_step <= 1.0:
            raise ValueError(f"space.sparsity.log_step must be in (0, 1], got {self.log_step}")

    def param_name(self, name: str, group: bool = False) -> str:
        """Optuna parameter of a layer (or of a layer group sharing one value)."""
        prefix = LOG_DENSITY_PREFIX if self.scale == "log_density" else SPARSITY_PREFIX
        return ("group_" if group else "") + prefix + name

    def grid(self, low: float, high: float) -> tuple[float, float, float]:
        """(start, stop, step) of the sampled variable for sparsity bounds [low, high]."""
        if self.scale == "linear":
            stop = low + self.step * math.floor((high - low) / self.step + 1e-9)
            return low, round(stop, 10), self.step
        top = math.log10(1.0 - low)
        bottom = top - self.log_step * math.floor((top - math.log10(1.0 - high)) / self.log_step
                                                  + 1e-9)
        return round(bottom, 10), round(top, 10), self.log_step

    def suggest(self, trial: "TrialLike", name: str, low: float, high: float,
                group: bool = False) -> float:
        """Draw one layer's (or group's) sparsity within [low, high] on this range's grid."""
        start, stop, step = self.grid(low, high)
        if stop <= start:
            return low
        value = trial.suggest_float(self.param_name(name, group), start, stop, step=step)
        return self.to_sparsity(value)

    def clamp(self, value: float, low: float, high: float) -> float:
        """The sparsity of sampled-variable ``value`` held inside bounds [low, high] (on the grid)."""
        start, stop, _ = self.grid(low, high)
        return self.to_sparsity(round(min(max(value, start), max(start, stop)), 10))

    def to_sparsity(self, value: float) -> float:
        if self.scale == "linear":
            return round(float(value), 6)
        return round(1.0 - 10.0 ** float(value), 6)

    def snap(self, sparsity: float, low: float, high: float) -> float:
        """The grid value closest to ``sparsity`` (for enqueued hand-made candidates)."""
        start, stop, step = self.grid(low, high)
        if stop <= start:
            return self.to_sparsity(start)
        if self.scale == "linear":
            target = min(max(sparsity, start), stop)
        else:
            target = math.log10(max(1.0 - min(max(sparsity, low), high), 1e-12))
        return round(start + step * round((min(max(target, start), stop) - start) / step), 10)


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
    # How per-layer sparsity becomes Optuna parameters: per_layer (one value each) or
    # global_offset (one global value + an offset per layer within max_offset; spaces/offsets.py).
    parametrization: str = "per_layer"
    max_offset: float = 1.0
    # Per-layer upper bounds on sparsity: layer name (exact) or pattern as in ``groups`` -> bound.
    max_sparsity: dict[str, float] = field(default_factory=dict)
    # Tolerated accuracy drop: per-layer upper bounds from the study's sensitivity analysis
    # (measured once when missing), merged into ``max_sparsity``. None = off.
    sensitivity_max_drop: float | None = None

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
        for key, bound in self.max_sparsity.items():
            if not isinstance(bound, (int, float)) or not 0.0 <= bound < 1.0:
                raise ValueError(f"space.max_sparsity.{key} must be in [0, 1), got {bound!r}")
            check_pattern(key, key, field_name="space.max_sparsity")
        if self.parametrization not in PARAMETRIZATIONS:
            raise ValueError(f"space.parametrization must be one of {list(PARAMETRIZATIONS)}, "
                             f"got '{self.parametrization}'")
        if not 0.0 <= self.max_offset <= 3.0:
            raise ValueError(f"space.max_offset must be in [0, 3] (units of the sampled "
                             f"variable), got {self.max_offset}")
        drop = self.sensitivity_max_drop
        if drop is not None and not 0.0 <= drop < 1.0:
            raise ValueError(f"space.sensitivity_max_drop must be in [0, 1) (an accuracy drop, "
                             f"e.g. 0.02 = two points) or null, got {drop}")

    def with_max_sparsity(self, bounds: Mapping[str, float]) -> "SpaceSettings":
        """These settings with ``bounds`` ({layer name: bound}) merged into ``max_sparsity``
        (the tighter bound wins; merging the same bounds again changes nothing)."""
        merged = dict(self.max_sparsity)
        for name, bound in bounds.items():
            merged[name] = min(float(bound), merged.get(name, 1.0))
        return replace(self, max_sparsity=merged)


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
        self._names = frozenset(layer.name for layer in self.layers)
        self._check_caps()
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
        self._share_group_bounds()
        choices = ("bits", "criteria", "granularities", "schedules", "regularization",
                   "distillation", "finetune_epochs")
        if not self.searched_layers() and all(len(getattr(settings, c)) <= 1 for c in choices):
            raise ValueError(
                "search space is empty: no layer's sparsity can vary (space.sparsity.low == high "
                f"= {settings.sparsity.low}, or only an excluded classifier) and every other "
                "space choice (bits, criteria, granularities, schedules, ...) holds one value")

    def _bounds_for(self, layer: LayerInfo) -> tuple[float, float]:
        rng = self.settings.sparsity
        if layer.is_classifier and self.settings.classifier == "exclude":
            return (0.0, 0.0)
        high = rng.high
        if layer.is_classifier and self.settings.classifier == "cap":
            high = min(high, self.settings.classifier_max_sparsity)
        for bound in self._caps(layer):
            high = min(high, bound)
        return (rng.low, max(rng.low, high))

    def _caps(self, layer: LayerInfo) -> list[float]:
        """The ``max_sparsity`` bounds that apply to a layer (a key naming a layer exactly matches
        only that layer; any other key is a pattern as in ``groups``)."""
        return [bound for key, bound in self.settings.max_sparsity.items()
                if (key == layer.name if key in self._names else matches(key, layer))]

    def _check_caps(self) -> None:
        for key in self.settings.max_sparsity:
            if key not in self._names and not any(matches(key, layer) for layer in self.layers):
                raise ValueError(f"space.max_sparsity: '{key}' is neither a layer name nor a "
                                 f"pattern matching one (layers: {sorted(self._names)})")

    def _share_group_bounds(self) -> None:
        """Layers of a group share one value, so they share the tightest upper bound."""
        for group in set(self._group_of.values()):
            members = [n for n, g in self._group_of.items() if g == group]
            high = min(self._sparsity_bounds[n][1] for n in members)
            for name in members:
                self._sparsity_bounds[name] = (self._sparsity_bounds[name][0], high)

    def _units(self) -> list[tuple[str, bool, float, float]]:
        """What the sampler draws a sparsity for: each searched layer outside a group, and each
        group once, as (name, is a group, low, high), in layer order."""
        units: dict[str, tuple[str, bool, float, float]] = {}
        for name in self.searched_layers():
            group = self._group_of.get(name)
            low, high = self._sparsity_bounds[name]
            units.setdefault(group or name, (group or name, group is not None, low, high))
        return list(units.values())

    def criteria_for(self, granularity: str) -> list[str]:
        """The criteria drawn with ``granularity``."""
        return list(self._criteria[granularity])

    def sparsity_bounds(self) -> dict[str, tuple[float, float]]:
        """(low, high) sparsity of every layer (equal when the layer is not searched)."""
        return dict(self._sparsity_bounds)

    @property
    def layer_names(self) -> list[str]:
        return [layer.name for layer in self.layers]

    def searched_layers(self) -> list[str]:
        """Layers whose sparsity is a search dimension (excluded ones stay dense)."""
        return [n for n, (lo, hi) in self._sparsity_bounds.items() if hi > lo]

    def suggest(self, trial: TrialLike) -> Candidate:
        """Draw one candidate, define-by-run (the same for the Optuna and Ray backends)."""
        rng = self.settings.sparsity
        units = self._units()
        if self.settings.parametrization == "global_offset":
            drawn = GlobalOffset(rng, self.settings.max_offset).suggest(trial, units)
        else:
            drawn = {name: rng.suggest(trial, name, low, high, group=group)
                     for name, group, low, high in units}
        sparsity = {name: drawn.get(self._group_of.get(name, name), low)
                    for name, (low, _) in self._sparsity_bounds.items()}
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
        return self.candidate_for({n: sparsity for n in self.searched_layers()},
                                  {n: bits for n in self.layer_names}, criterion)

    def candidate_for(self, sparsity: Mapping[str, float], bits: Mapping[str, int],
                      criterion: str = "magnitude") -> Candidate:
        """The drawable candidate closest to the given per-layer sparsity and bits (snapped to the
        grid and to the allowed bit-widths), with the first choice of every other dimension."""
        allowed = self.settings.bits
        granularity = self.settings.granularities[0]
        criteria = self._criteria[granularity]
        options: dict[str, Any] = {"reg": self.settings.regularization[0],
                                   "distill": self.settings.distillation[0]}
        if self.settings.finetune_epochs:
            options["finetune_epochs"] = self.settings.finetune_epochs[0]
        candidate = Candidate(
            sparsity={n: sparsity.get(n, 0.0) for n in self.layer_names},
            bits={n: min(allowed, key=lambda b: (abs(b - bits.get(n, 32)), -b))
                  for n in self.layer_names},
            criterion=criterion if criterion in criteria else criteria[0],
            granularity=granularity, schedule=self.settings.schedules[0], seed=self.seed,
            options=options)
        return self.from_params(self.to_params(candidate))

    def to_params(self, candidate: Candidate) -> dict[str, Any]:
        """The Optuna parameters that would make ``suggest`` return ``candidate`` (for enqueueing)."""
        rng = self.settings.sparsity
        units = self._units()
        by_unit = {}
        for name in self.searched_layers():      # a group takes its first member's value
            by_unit.setdefault(self._group_of.get(name, name), candidate.sparsity.get(name, 0.0))
        if self.settings.parametrization == "global_offset":
            params: dict[str, Any] = GlobalOffset(rng, self.settings.max_offset).to_params(
                units, by_unit)
        else:
            params = {rng.param_name(name, group): rng.snap(by_unit[name], low, high)
                      for name, group, low, high in units}
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
            "settings": settings_signature(self.settings),
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


def settings_signature(settings: SpaceSettings) -> dict[str, Any]:
    """The JSON-able form of space settings stored with a study."""
    return _jsonable(asdict(settings))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value
