"""The experiment configuration: frozen dataclasses loaded from YAML and validated."""
from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from search.cost_settings import CostSettings
from search.objectives import Objectives, objective_metrics
from search.run.backends.settings import ParallelSettings, RaySettings
from search.run.early_stopping_settings import EarlyStoppingSettings, check_objectives
from search.run.refine_settings import RefineSettings, refinable
from search.run.samplers import SAMPLERS
from search.schema import ConfigError, from_dict, to_dict
from spaces.settings import BIT_WIDTHS, SpaceSettings
from trainers.costs.metrics import MAXIMIZE
from trainers.costs.metrics import direction as metric_direction
from trainers.data import DATASETS, DataSettings, is_known_data_name
from trainers.device import DEVICE_PATTERN
from trainers.method_names import GRANULARITY_NAMES, SCHEDULE_NAMES
from trainers.models import MODELS, ModelSettings, is_known_model_name
from trainers.yaml_file import safe_load
from trainers.pruning import CRITERIA, PruningSettings
from trainers.train_settings import TrainSettings

# The hand-made allocation rules ``search.baselines`` may name (``search.run.starting.ALLOCATIONS``).
BASELINES = ("uniform", "global_magnitude", "lamp", "erk")


@dataclass(frozen=True)
class SearchSettings:
    """The ``search:`` section: budget, sampler, objectives, storage."""

    n_trials: int = 60
    # A budget in training (null: none): fine-tune epochs over the whole study. A candidate
    # screened out at rung 0 spends none, so the search looks at many more candidates; n_trials
    # still caps how many it looks at. Whichever budget is reached first ends the study.
    budget_epochs: int | None = None
    sampler: str = "tpe"               # measured best at the default budget (benchmarks/README.md)
    population_size: int = 16
    objectives: Objectives = field(default_factory=Objectives)
    storage: str | None = None        # default: sqlite:///<study folder>/study.db
    enqueue_dense: bool = True        # first trial = the dense reference (32 bits, no pruning)
    # Hand-made baselines enqueued first, magnitude criterion, at each of ``baseline_bits``: the
    # same sparsity in every layer, one global threshold, ERK's allocation (a candidate equal to an
    # earlier one is not enqueued twice). An empty list turns them off. "lamp" is available too.
    # ERK joined the default list on benchmarks/search_quality.py's word (benchmarks/README.md).
    baseline_sparsities: tuple[float, ...] = (0.5, 0.8, 0.9, 0.95)
    baseline_bits: tuple[int, ...] = (8,)
    baselines: tuple[str, ...] = ("uniform", "global_magnitude", "erk")
    # User limits steering the sampler (Optuna constraints), e.g. {max_flops: 2e5, min_accuracy: 0.9}
    constraints: dict[str, float] = field(default_factory=dict)
    max_consecutive_failures: int = 5
    early_stopping: EarlyStoppingSettings = field(default_factory=EarlyStoppingSettings)
    # Every few trials, bisect the front where it crosses "within X of the dense accuracy"
    # (search.run.refine; by default 1 point below dense when accuracy and a cost are among the
    # objectives; within: [] turns it off); the sampler draws the others.
    refine: RefineSettings = field(default_factory=RefineSettings)

    def refine_levels(self) -> tuple[float, ...]:
        """The accuracy levels refined for this search's objectives (empty: refinement off)."""
        return self.refine.levels(self.objectives.metrics, self.objectives.directions)

    def __post_init__(self) -> None:
        if self.n_trials < 1:
            raise ConfigError(f"search.n_trials must be >= 1, got {self.n_trials}")
        if self.budget_epochs is not None and (isinstance(self.budget_epochs, bool)
                                               or self.budget_epochs < 1):
            raise ConfigError(f"search.budget_epochs must be an integer >= 1 (or null), "
                              f"got {self.budget_epochs!r}")
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"search.sampler must be one of {list(SAMPLERS)}, got '{self.sampler}'")
        if self.population_size < 2:
            raise ConfigError(f"search.population_size must be >= 2, got {self.population_size}")
        for name in self.baselines:
            if name not in BASELINES:
                raise ConfigError(f"search.baselines must be values from {list(BASELINES)}, "
                                  f"got '{name}'")
        for key, value in self.constraints.items():
            bound, _, metric = key.partition("_")
            if bound not in ("max", "min") or metric not in objective_metrics():
                raise ConfigError(f"search.constraints: keys must be max_<metric> or min_<metric> "
                                  f"with a metric from {objective_metrics()}, got '{key}'")
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value):
                raise ConfigError(f"search.constraints.{key} must be a finite number, "
                                  f"got {value!r}")
            side = "min" if metric_direction(metric) == MAXIMIZE else "max"
            if bound != side:   # a floor on a cost, a ceiling on the accuracy: nothing to steer
                raise ConfigError(f"search.constraints: {metric} is "
                                  f"{metric_direction(metric)}d, so its bound is {side}_{metric}, "
                                  f"got '{key}'")
            if side == "max" and not value > 0:   # costs are >= 0: no candidate could meet it
                raise ConfigError(f"search.constraints.{key} must be > 0, got {value!r}")
        check_objectives(self.early_stopping, self.objectives.metrics)
        if self.refine.within and not refinable(self.objectives.metrics,
                                                self.objectives.directions):
            raise ConfigError(f"search.refine needs accuracy and a minimised cost among "
                              f"search.objectives, got {self.objectives.metrics}")
        for value in self.baseline_bits:
            if value not in BIT_WIDTHS:
                raise ConfigError(f"search.baseline_bits must be values from {list(BIT_WIDTHS)}, "
                                  f"got {value}")
        for value in self.baseline_sparsities:
            if not 0.0 <= value < 1.0:
                raise ConfigError(f"search.baseline_sparsities must be in [0, 1), got {value}")
        if self.max_consecutive_failures < 1:
            raise ConfigError("search.max_consecutive_failures must be >= 1, "
                              f"got {self.max_consecutive_failures}")


# Samplers take seeds below 2**32; each worker adds its index (``search.run.samplers``).
MAX_SEED = 2 ** 31 - 1


@dataclass(frozen=True)
class ExperimentConfig:
    """One study: what to compress, how to search, where to store it."""

    study: str = "default"
    output_dir: str = "runs"
    seed: int = 0
    device: str = "auto"
    threads: int = 0                  # torch threads per worker; 0 = cores / workers
    data: DataSettings = field(default_factory=DataSettings)
    model: ModelSettings = field(default_factory=ModelSettings)
    dense: TrainSettings = field(
        default_factory=lambda: TrainSettings(epochs=40, lr=2e-3, weight_decay=1e-4))
    finetune: TrainSettings = field(default_factory=lambda: TrainSettings(epochs=4, lr=1e-3))
    space: SpaceSettings = field(default_factory=SpaceSettings)
    search: SearchSettings = field(default_factory=SearchSettings)
    cost: CostSettings = field(default_factory=CostSettings)
    pruning: PruningSettings = field(default_factory=PruningSettings)
    parallel: ParallelSettings = field(default_factory=ParallelSettings)
    ray: RaySettings = field(default_factory=RaySettings)

    def __post_init__(self) -> None:
        if not self.study or any(c in self.study for c in "/\\") or self.study.startswith("."):
            raise ConfigError(f"study must be a plain folder name (no '/' or leading '.'), "
                              f"got '{self.study}'")
        if not DEVICE_PATTERN.match(self.device):
            raise ConfigError(f"device must be one of auto, cpu, cuda, cuda:N, mps; "
                              f"got '{self.device}'")
        if self.threads < 0:
            raise ConfigError(f"threads must be >= 0, got {self.threads}")
        if isinstance(self.seed, bool) or not 0 <= self.seed <= MAX_SEED:
            raise ConfigError(f"seed must be an integer in [0, {MAX_SEED}], got {self.seed}")
        chosen = self.search.baseline_bits
        if chosen != SearchSettings().baseline_bits:   # the default adapts to space.bits
            for value in chosen:
                if value not in self.space.bits:
                    raise ConfigError(f"search.baseline_bits must be values from space.bits "
                                      f"{list(self.space.bits)}, got {value}")
        rungs = self.search.early_stopping.rungs
        most = self.last_finetune_epoch()
        if rungs != EarlyStoppingSettings().rungs and max(rungs) >= most:   # given, never met
            raise ConfigError(f"search.early_stopping.rungs must be fine-tune epochs below the "
                              f"last ({most}: finetune.epochs or the largest of "
                              f"space.finetune_epochs), got {list(rungs)}")
        latency_uses = ["search.objectives" for m in self.search.objectives.metrics
                        if m == "latency_ms"]
        latency_uses += [f"search.constraints.{key}" for key in self.search.constraints
                         if key.endswith("_latency_ms")]
        if latency_uses and not self.cost.measure_latency:
            raise ConfigError(f"{latency_uses[0]} uses latency_ms but cost.measure_latency is "
                              f"false; turn it on or use another metric")

    @property
    def study_dir(self) -> Path:
        return Path(self.output_dir) / self.study

    def dense_key(self) -> str:
        """Hash of everything that defines the dense reference."""
        parts = {k: to_dict(getattr(self, k)) for k in ("data", "model", "dense", "seed")}
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]

    def last_finetune_epoch(self) -> int:
        """The most fine-tune epochs a candidate runs (early-stopping rungs come before it)."""
        return max(self.space.finetune_epochs or (self.finetune.epochs,))

    def reserve_epochs(self) -> int:
        """The most epochs one candidate may train (what a running trial holds of
        ``search.budget_epochs``; see ``trainers.method_parts.training_epochs``)."""
        searched = self.space.finetune_epochs
        most = max(searched) if searched else self.finetune.epochs
        if "oneshot" in self.space.schedules and any(r > 0 for r in self.space.regularization):
            most += self.pruning.reg_epochs
        if "during_training" in self.space.schedules:
            most = max(most, self.pruning.during_epochs or self.dense.epochs)
        return max(1, most)

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    def with_overrides(self, **changes: Any) -> "ExperimentConfig":
        return replace(self, **changes)


def validate_names(config: ExperimentConfig) -> None:
    """Registered names: criteria, model, data set (listed in the message when unknown)."""
    for name in config.space.criteria:
        if name not in CRITERIA:
            raise ConfigError(f"space.criteria: criterion must be one of {sorted(CRITERIA)}, "
                              f"got '{name}'")
    validate_methods(config.space)
    if not is_known_model_name(config.model.name):
        raise ConfigError(f"model.name must be one of {sorted(MODELS)}, 'torchvision:<arch>' "
                          f"(a torchvision classification model) or 'module:callable', "
                          f"got '{config.model.name}'")
    if not is_known_data_name(config.data.name):
        raise ConfigError(f"data.name must be one of {sorted(DATASETS)} or 'module:callable', "
                          f"got '{config.data.name}'")


def validate_methods(space: SpaceSettings) -> None:
    """Granularity and schedule names, and criterion x granularity pairs that make sense: each
    listed criterion must work with a listed granularity and each granularity with a criterion."""
    for name in space.granularities:
        if name not in GRANULARITY_NAMES:
            raise ConfigError(f"space.granularities: granularity must be one of "
                              f"{list(GRANULARITY_NAMES)}, got '{name}'")
    for name in space.schedules:
        if name not in SCHEDULE_NAMES:
            raise ConfigError(f"space.schedules: schedule must be one of {list(SCHEDULE_NAMES)}, "
                              f"got '{name}'")
    for name in space.criteria:
        works_with = CRITERIA[name].granularities
        if not set(works_with) & set(space.granularities):
            raise ConfigError(
                f"space.criteria: criterion '{name}' works only with granularities "
                f"{list(works_with)} ({_first_sentence(CRITERIA[name].__doc__)}), but "
                f"space.granularities is {list(space.granularities)}; add one of them or remove "
                f"'{name}'")
    for granularity in space.granularities:
        if not any(granularity in CRITERIA[c].granularities for c in space.criteria):
            raise ConfigError(
                f"space.granularities: no criterion in space.criteria {list(space.criteria)} "
                f"works with granularity '{granularity}'; add one of "
                f"{[c for c, cls in CRITERIA.items() if granularity in cls.granularities]}")


def criteria_by_granularity(space: SpaceSettings) -> dict[str, list[str]]:
    """For each listed granularity, the listed criteria defined for it (config order)."""
    return {g: [c for c in space.criteria if g in CRITERIA[c].granularities]
            for g in space.granularities}


def config_from_dict(data: dict[str, Any] | None) -> ExperimentConfig:
    data = dict(data or {})
    for section in ("model", "data"):   # shorthand: `model: torchvision:resnet18`
        if isinstance(data.get(section), str):
            data[section] = {"name": data[section]}
    config = from_dict(ExperimentConfig, data)
    validate_names(config)
    return config


def _first_sentence(doc: str | None) -> str:
    """A docstring's first sentence on one line (a criterion's description in an error)."""
    text = " ".join((doc or "").split())
    end = re.search(r"\.\s+(?=[A-Z])", text)     # not inside "et al. 2019"
    return text if end is None else text[:end.start() + 1]


def load_config(path: str | Path | None) -> ExperimentConfig:
    """Load and validate a YAML config; ``None`` gives the defaults (digits + built-in CNN)."""
    if path is None:
        return config_from_dict({})
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file '{path}' does not exist")
    try:
        with open(path) as handle:
            data = safe_load(handle)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"config file '{path}' is not valid YAML{where}: "
                          f"{getattr(exc, 'problem', exc)}") from exc
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"config file '{path}' must hold a mapping of sections, "
                          f"got {type(data).__name__}")
    return config_from_dict(data)


def dump_config(config: ExperimentConfig) -> str:
    return yaml.safe_dump(config.to_dict(), sort_keys=False)
