"""Python API: run a study on your own model and data, and read its results.

```python
from search.api import run_search

result = run_search(model=make_net, train=train_set, test=test_set,
                    study="mine", search={"n_trials": 40}, finetune={"epochs": 2})
print(result.front())          # pandas DataFrame: the Pareto front
```

The command line is a thin layer over ``run_search`` / ``open_existing``.
"""
from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import optuna
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from trainers.data import inner_dataset, prediction_count
from trainers.errors import SetupError
from trainers.selection_metrics import LAMBDA_METRIC, check_metric_fits, get_metric, metric_name
from trainers.training import LossFn, MetricFn
from trainers.trial import reference_metrics

from search.config import ExperimentConfig, config_from_dict, load_config
from search.decide.constraints import FRACTION_METRICS
from search.decide.tables import write_tables
from search.run.backends import ContextInputs, get_backend
from search.run.backends.local import check_picklable
from search.run.context import build_study_context, set_threads, user_data
from search.run.preflight import nothing_left_on_bad_input, preflight
from search.run.storage import checkpoint_sqlite
from search.run.study import (LATENCY_THREADS_ATTR, check_resumable, open_study,
                              reuse_dense_latency, save_study_config)
from search.schema import ConfigError
from search.study_result import StudyResult, open_existing

Split = Dataset | DataLoader
ModelSpec = Callable[[], nn.Module] | nn.Module | str | Mapping[str, Any]

if TYPE_CHECKING:
    from search.run.sensitivity import SensitivityResult


# Mappings that are one setting, not a section: given, they replace the base's (as a YAML file
# replaces the defaults); merged, `objectives: {accuracy: max}` kept flops and energy beside it.
WHOLE_VALUES = {"search.objectives", "search.constraints", "space.groups", "space.max_sparsity",
                "model.options", "data.options"}


def merge_options(base: Mapping[str, Any], overrides: Mapping[str, Any],
                  path: str = "") -> dict[str, Any]:
    """``base`` with ``overrides`` merged in, section by section (nested mappings merge, but for
    ``WHOLE_VALUES``; a model or data section naming another model or data set replaces the
    base's, whose options were for the other one)."""
    merged = dict(base)
    for key, value in overrides.items():
        where = f"{path}{key}"
        other_name = where in ("model", "data") and isinstance(value, Mapping) and \
            "name" in value and value["name"] != (merged.get(key) or {}).get("name")
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping) \
                and where not in WHOLE_VALUES and not other_name:
            merged[key] = merge_options(merged[key], value, f"{where}.")
        else:
            merged[key] = value
    return merged


def resolve_config(config: ExperimentConfig | str | Path | Mapping[str, Any] | None,
                   options: Mapping[str, Any]) -> ExperimentConfig:
    """A config from an object, a YAML path, a dict (the YAML's keys) or defaults, plus
    ``options`` given as keyword arguments (the same keys as the YAML's top level)."""
    if isinstance(config, Mapping):
        base = dict(config)
    elif isinstance(config, ExperimentConfig):
        if not options:
            return config
        base = config.to_dict()
    else:
        loaded = load_config(config)
        if not options:
            return loaded
        base = loaded.to_dict()
    return config_from_dict(merge_options(base, options))


class CopyOf:
    """A factory of fresh copies of a module instance (a class, not a lambda: local worker
    processes receive it pickled)."""

    def __init__(self, model: nn.Module):
        self.template = copy.deepcopy(model)

    def __call__(self) -> nn.Module:
        return copy.deepcopy(self.template)


def _model_factory(model: ModelSpec | None) -> Callable[[], nn.Module] | None:
    """A zero-argument factory from a callable or a module instance (copied for each use)."""
    if model is None or isinstance(model, (str, Mapping)):
        return None
    if isinstance(model, nn.Module):
        return CopyOf(model)
    if callable(model):
        return model
    raise ConfigError(f"model must be a callable returning an nn.Module, an nn.Module, a model "
                      f"name or a model section, got {type(model).__name__}")


def run_search(config: ExperimentConfig | str | Path | Mapping[str, Any] | None = None, *,
               model: ModelSpec | None = None, train: Split | None = None,
               val: Split | None = None, test: Split | None = None,
               loss: LossFn | None = None, metric: MetricFn | str | None = None,
               num_classes: int | None = None, dense_key: str | None = None,
               preprocessing: str | Mapping[str, Any] | None = None,
               log: Callable[[str], None] = print, **options: Any) -> StudyResult:
    """Run (or resume) a study until its trial budget is finished; return its results.

    Args:
        config: an ``ExperimentConfig``, a YAML path, a dict with the YAML's keys, or ``None``
            (defaults: digits and the built-in CNN).
        model: a callable returning a fresh ``nn.Module`` (called for the dense reference and
            every trial), or an ``nn.Module`` (deep-copied), or a model name / section as in YAML.
        train, val, test: torch ``Dataset``s or ``DataLoader``s yielding ``(input, label)``. A
            missing ``test``, then ``val``, is carved from ``train`` (``data.test_fraction`` /
            ``data.val_fraction``, seeded by ``data.split_seed``). Selection reads ``val``; ``test``
            is only reported (``test_accuracy``).
        loss: ``loss(logits, targets) -> tensor`` for training (default: cross-entropy).
        metric: ``"accuracy"`` (default), ``"top5"``, ``"f1_macro"`` or ``metric(logits, targets)
            -> float`` (higher is better). Its value is recorded as ``accuracy``; its name in
            ``result.metric``.
        num_classes: skips inferring it from the data (only needed by named models).
        dense_key: identifies the dense reference cached in the study folder; by default a hash
            of the model's class and parameter shapes, the data's sizes and the dense settings.
        preprocessing: how a raw input becomes what ``train`` yields (a sentence, or a mapping
            with ``description``), recorded in every export's manifest; ``unknown`` if not given.
        log: where progress lines go.
        **options: config sections by their YAML names, e.g. ``study="mine"``,
            ``search={"n_trials": 40}``, ``finetune={"epochs": 2}``, ``device="cuda"``.
    """
    if isinstance(model, (str, Mapping)):
        options = {**options, "model": model if isinstance(model, Mapping) else {"name": model}}
    config = resolve_config(config, options)
    factory = _model_factory(model)
    data = user_data(config, train, val, test, num_classes, preprocessing)
    try:
        metric_fn = get_metric(metric) if isinstance(metric, str) else metric
        if data is not None:     # known before anything trains
            check_metric_fits(metric_name(metric), data.num_classes)
    except SetupError as exc:
        raise ConfigError(str(exc)) from exc
    floor = config.search.constraints.get("min_accuracy")
    if floor is not None and metric_name(metric) in FRACTION_METRICS and not 0 <= floor <= 1:
        raise ConfigError(f"search.constraints.min_accuracy must be in [0, 1] for metric "
                          f"'{metric_name(metric)}', got {floor}")
    # Failed trials are reported by our progress line (reason) and keep their traceback in the
    # storage (user attr fail_traceback); Optuna's own warning would print it once more.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    backend = get_backend(config.parallel.backend)  # fails fast when an optional extra is missing
    with nothing_left_on_bad_input(config):  # a refused new study leaves no folder or file
        exists = preflight(config)      # bad input fails here, before training or writing
        custom = any(x is not None for x in (data, factory, loss, metric_fn))
        if custom and config.parallel.workers > 1 and config.parallel.backend == "optuna":
            check_picklable(ContextInputs(data, factory, loss, metric_fn, {}))  # before training
        backend.prepare(config)         # e.g. worker processes import while the context loads
        set_threads(config)
        context, space = build_study_context(config, log=log, data=data, model_factory=factory,
                                             loss_fn=loss, metric_fn=metric_fn,
                                             dense_key=dense_key, keep_dense=exists)
        try:
            check_metric_fits(metric_name(metric), context.data.num_classes)
        except SetupError as exc:
            raise ConfigError(str(exc)) from exc
        study = open_study(config, space)
        _check_metric(study, config, metric_name(metric))
    log(space.describe_bounds())
    sources = {"model": _describe(model, "config"), "data": _describe(train, "config")}
    study.set_user_attr("sources", sources)
    if data is not None and (num_classes is not None or preprocessing is not None):
        from search.decide.retrain import DATA_ATTR   # what an export from disk says again

        declared = None if preprocessing is None else json.loads(
            json.dumps(dict(data.preprocessing), default=str))
        study.set_user_attr(DATA_ATTR, {"num_classes": num_classes, "preprocessing": declared})
    if study.user_attrs.get("n_trials") != config.search.n_trials:
        study.set_user_attr("n_trials", config.search.n_trials)   # a resume may change the budget
    if study.user_attrs.get("budget_epochs") != config.search.budget_epochs:
        study.set_user_attr("budget_epochs", config.search.budget_epochs)
    if "dense_reference" not in study.user_attrs:
        study.set_user_attr("dense_reference", reference_metrics(space.reference_candidate(),
                                                                  context))
        study.set_user_attr(LATENCY_THREADS_ATTR, torch.get_num_threads())
    else:   # a resume: the dense shapes keep the stored figure (at the same thread count)
        reuse_dense_latency(study, context)
    if "val_samples" not in study.user_attrs:   # what the accuracy is a fraction of (intervals)
        study.set_user_attr("val_samples", prediction_count(context.data.val))
    if study.user_attrs["val_samples"] < FEW_VAL_SAMPLES:
        log(f"note: the validation split has {study.user_attrs['val_samples']} predictions, so "
            f"an accuracy moves in steps of {1 / study.user_attrs['val_samples']:.3f}: the "
            f"front and the picks are decided by a few samples (give more data or a larger "
            f"data.val_fraction)")
    save_study_config(config, sources)
    try:
        inputs = ContextInputs.from_context(context) if custom else None
        backend.run(config, study, space, context, inputs=inputs, log=log)
    finally:
        objectives = config.search.objectives
        write_tables(study, config.study_dir, objectives.metrics, objectives.directions)
        checkpoint_sqlite(study._storage)   # study.db alone holds every trial (WAL, see storage)
    return StudyResult(config, study, context, space)


def _describe(obj: Any, default: str) -> str:
    """Where the model or data came from: ``config`` (rebuildable from config.yaml) or
    ``python: <name>`` (only the process that passed the object can rebuild it)."""
    if obj is None or isinstance(obj, (str, Mapping)):
        return default
    target = inner_dataset(obj) if isinstance(obj, (Dataset, DataLoader)) else obj
    kind = target if isinstance(target, type) or callable(target) and not isinstance(
        target, nn.Module) else type(target)
    return f"python: {getattr(kind, '__module__', '?')}.{getattr(kind, '__qualname__', kind)}"


FEW_VAL_SAMPLES = 30   # below this a validation split decides by a handful of predictions


def _check_metric(study: optuna.Study, config: ExperimentConfig, name: str) -> None:
    """Record the selection metric's name; a study resumed with another one is refused."""
    stored = study.user_attrs.get("metric")
    if stored is None:
        study.set_user_attr("metric", name)
    elif stored != name and (stored, name) != ("<lambda>", LAMBDA_METRIC):   # (older studies)
        raise ConfigError(f"study '{config.study}' was created with metric '{stored}', this run "
                          f"uses '{name}'; use a new study name")


def analyse_sensitivity(config: ExperimentConfig | str | Path | None = None, *,
                        grid: Sequence[float] | None = None, criterion: str = "magnitude",
                        granularity: str = "unstructured", max_drop: float | None = None,
                        log: Callable[[str], None] = print,
                        **context: Any) -> "SensitivityResult":
    """Per-layer sensitivity of the study's dense reference; written to ``<study>/sensitivity/``
    (tables, summary and ``sensitivity.png``).

    ``result.bounds(max_drop)`` gives ``{layer: max_sparsity}`` for narrowing the search space.
    """
    from search.decide.report.static import sensitivity_png
    from search.run.sensitivity import (DEFAULT_GRID, check_replaceable, validate_grid,
                                        write_sensitivity)

    if not isinstance(config, ExperimentConfig):
        config = load_config(config)
    check_replaceable(config.study_dir, validate_grid(grid or DEFAULT_GRID), criterion)
    config.study_dir.mkdir(parents=True, exist_ok=True)
    result = run_sensitivity(config, grid=grid or DEFAULT_GRID, criterion=criterion,
                             granularity=granularity, log=log, **context)
    folder = write_sensitivity(result, config.study_dir, max_drop)
    sensitivity_png(result, folder / "sensitivity.png")
    return result


def run_sensitivity(config: ExperimentConfig, *, grid: Sequence[float] | None = None,
                    criterion: str = "magnitude", granularity: str = "unstructured",
                    data: Any = None, model_factory: Callable[[], Any] | None = None,
                    log: Callable[[str], None] = print) -> "SensitivityResult":
    """Measure every prunable layer of the study's dense reference (trained first if missing);
    ``grid`` defaults to ``search.run.sensitivity.DEFAULT_GRID``. Nothing is written."""
    from search.run.sensitivity import DEFAULT_GRID, measure_sensitivity, validate_grid

    grid = validate_grid(DEFAULT_GRID if grid is None else grid)
    set_threads(config)
    # The analysis itself must not ask for sensitivity bounds (it is what provides them).
    plain = replace(config, space=replace(config.space, sensitivity_max_drop=None))
    # A study's trials were measured against its dense.pt: refuse other settings (as run does)
    # instead of retraining it under them; a folder with no study yet may retrain it.
    exists = (config.study_dir / "dense.pt").is_file() and check_resumable(config)
    context, _space = build_study_context(plain, log=log, data=data, model_factory=model_factory,
                                          keep_dense=exists)
    return measure_sensitivity(context, grid=grid, criterion=criterion, granularity=granularity,
                               seed=config.seed, log=log)


__all__ = ["StudyResult", "analyse_sensitivity", "merge_options", "open_existing", "resolve_config",
           "run_search", "run_sensitivity"]
