"""The search space: which layers, which sparsities, bits and methods; a define-by-run ``suggest``.

Pure data and arithmetic: ``trial`` is anything with Optuna's ``suggest_float`` /
``suggest_categorical`` (see ``spaces.sparsity_range.TrialLike``), so both backends share this one
function. The settings live in ``spaces.settings``, how a sparsity is sampled in
``spaces.sparsity_range`` and ``spaces.offsets``.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping, Sequence

from spaces.candidate import BITS_PREFIX, Candidate
from spaces.groups import assign_groups, group_sparsity, matches
from spaces.layers import LayerInfo
from spaces.nm_grid import NM_GRANULARITY, grid_value_for, nm_inputs, nm_sparsity
from spaces.offsets import GlobalOffset
from spaces.settings import SpaceSettings, settings_signature
from spaces.sparsity_range import FixedTrial, TrialLike

# Candidate.options keys and their neutral values (left out of a candidate when neutral).
OPTION_NEUTRAL = {"reg": 0.0, "distill": False}


class SearchSpace:
    """Per-layer sparsity and bits plus method choices over a fixed list of layers."""

    def __init__(self, layers: Sequence[LayerInfo], settings: SpaceSettings, seed: int = 0,
                 criteria_by_granularity: Mapping[str, Sequence[str]] | None = None,
                 nm_block: int = 4):
        """``criteria_by_granularity`` restricts the criteria drawn for each granularity (e.g.
        ``fpgm`` only with ``channel``); by default every criterion goes with every granularity.
        ``nm_block``: M of the ``n:m`` granularity (``pruning.nm_block``), which decides what
        sparsity an n:m candidate records (see ``spaces.nm_grid``)."""
        if not layers:
            raise ValueError("search space is empty: the model has no prunable Conv2d/Linear layer")
        if nm_block < 2:
            raise ValueError(f"pruning.nm_block must be >= 2, got {nm_block}")
        self.layers = tuple(layers)
        self.settings = settings
        self.seed = seed
        self.nm_block = nm_block
        self._names = frozenset(layer.name for layer in self.layers)
        self._layer = {layer.name: layer for layer in self.layers}
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
        high = rng.high if self.settings.min_kept_per_output is None else kept_bound(
            layer, self.settings.min_kept_per_output, rng.low)
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

    def describe_bounds(self) -> str:
        """One line for the start of a run: each searched layer's sparsity upper bound."""
        highs = [(n, hi) for n, (lo, hi) in self._sparsity_bounds.items() if hi > lo]
        rule = (f"space.min_kept_per_output: {self.settings.min_kept_per_output:g} weights per "
                "output unit" if self.settings.min_kept_per_output is not None
                else f"space.sparsity.high {self.settings.sparsity.high:g}")
        if not highs:
            return (f"note: no layer's sparsity is searched ({len(self.layers)} Conv2d/Linear "
                    f"layer(s), each left out: the classifier by space.classifier "
                    f"'{self.settings.classifier}', the rest by their bounds); trials differ only "
                    f"in bit-widths and criteria (space.classifier: include prunes the classifier)")
        shown = ", ".join(f"{n} {hi:.4g}" for n, hi in highs[:8])
        more = f", ... ({len(highs)} layers)" if len(highs) > 8 else ""
        return f"sparsity upper bounds ({rule}, per-layer caps applied): {shown}{more}"

    @property
    def layer_names(self) -> list[str]:
        return [layer.name for layer in self.layers]

    def group_of(self, layer: str) -> str | None:
        """The ``space.groups`` group a searched layer belongs to (None: its own value)."""
        return self._group_of.get(layer)

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
        if granularity == NM_GRANULARITY:   # record what N:M applies, not what was asked
            sparsity = {name: self._nm_value(name, s) for name, s in sparsity.items()}
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
        return self.suggest(FixedTrial(params))

    def dense_candidate(self) -> Candidate:
        """All layers dense at 32 bits (or the widest allowed): enqueued as the first trial."""
        return self.uniform_candidate(0.0, 32)

    def reference_candidate(self) -> Candidate:
        """The dense reference as trained: no layer pruned, float weights (32 bits) even where the
        space draws only narrower ones; what its costs are computed for."""
        dense = self.dense_candidate()
        return replace(dense, bits={name: 32 for name in dense.bits})

    def uniform_candidate(self, sparsity: float, bits: int, criterion: str = "magnitude") -> Candidate:
        """The same sparsity in every searched layer and the same bits everywhere (hand-made sweep),
        with the first listed granularity, schedule and options."""
        return self.candidate_for({n: sparsity for n in self.searched_layers()},
                                  {n: bits for n in self.layer_names}, criterion)

    def candidate_for(self, sparsity: Mapping[str, float], bits: Mapping[str, int],
                      criterion: str = "magnitude") -> Candidate:
        """The drawable candidate closest to the given per-layer sparsity and bits (clamped to each
        layer's bounds and snapped to the grid and to the allowed bit-widths: a rule such as one
        global magnitude threshold may empty a layer of small weights), with the first choice of
        every other dimension."""
        allowed = self.settings.bits
        bounds = self._sparsity_bounds
        granularity = self.settings.granularities[0]
        criteria = self._criteria[granularity]
        options: dict[str, Any] = {"reg": self.settings.regularization[0],
                                   "distill": self.settings.distillation[0]}
        if self.settings.finetune_epochs:
            options["finetune_epochs"] = self.settings.finetune_epochs[0]
        candidate = Candidate(
            sparsity={n: min(max(sparsity.get(n, 0.0), bounds[n][0]), bounds[n][1])
                      for n in self.layer_names},
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
        if candidate.granularity == NM_GRANULARITY:   # its values are N:M's, not grid values
            by_unit = {name: self._nm_grid_value(name, low, high, candidate)
                       for name, _, low, high in units}
        members: dict[str, list[str]] = {}
        for name in self.searched_layers():
            members.setdefault(self._group_of.get(name, name), []).append(name)
        for unit, names in members.items():   # a group: its members' weight-weighted mean
            by_unit.setdefault(unit, group_sparsity(names, candidate.sparsity, self._layer))
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

    def _nm_value(self, layer: str, sparsity: float) -> float:
        """The sparsity N:M applies to ``layer`` asked for ``sparsity`` (kept within its bound)."""
        info = self._layer[layer]
        return nm_sparsity(sparsity, nm_inputs(info.weight_shape), self.nm_block,
                           high=self._sparsity_bounds[layer][1])

    def _nm_grid_value(self, unit: str, low: float, high: float, candidate: Candidate) -> float:
        """A grid sparsity of ``unit`` (a layer or group) that ``suggest`` turns into the n:m
        values ``candidate`` records for its members (``spaces.nm_grid.grid_value_for``)."""
        members = [n for n in self.searched_layers() if self._group_of.get(n, n) == unit]
        return grid_value_for(self.settings.sparsity.grid_values(low, high),
                              {n: candidate.sparsity.get(n, 0.0) for n in members}, self._nm_value)

    def signature(self) -> dict[str, Any]:
        """A JSON-able description; a study resumed with a different one is refused."""
        return {
            "layers": [layer.to_dict() for layer in self.layers],
            "settings": settings_signature(self.settings),
            "seed": self.seed,
            "criteria_by_granularity": {g: list(c) for g, c in self._criteria.items()},
        }


MAX_BOUND = 0.9999   # the highest per-layer bound ``min_kept_per_output`` gives (1 - 1e-4)


def kept_bound(layer: LayerInfo, kept_per_output: float, low: float = 0.0) -> float:
    """The sparsity that leaves ``kept_per_output`` weights per output unit of ``layer`` (its
    weight's first dimension), within [low, MAX_BOUND]."""
    outputs = layer.weight_shape[0] if layer.weight_shape else 1
    bound = 1.0 - kept_per_output * outputs / max(1, layer.params)
    return min(MAX_BOUND, max(low, bound))

