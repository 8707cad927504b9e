"""Build the evaluation context and search space of a study (once, outside any trial)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
from torch import nn

from search.config import ExperimentConfig, criteria_by_granularity
from search.schema import ConfigError
from search.run.dense_keys import user_dense_keys
from search.run.stop_request import raise_if_requested
from spaces.settings import SpaceSettings
from spaces.space import SearchSpace
from trainers.costs import CostBasis, cost_basis, load_profile
from trainers.data import DataBundle, bundle_from_splits, inner_dataset, load_data
from trainers.data.labels import LabelError, check_class_labels
from trainers.device import resolve_device
from trainers.errors import SetupError, error_summary
from trainers.eval_context import EvalContext
from trainers.models import build_model
from trainers.models.attention import splitting
from trainers.pruning.structured import ChannelCoupling
from trainers.reference import DenseMismatch, load_or_train_dense
from trainers.training import (LossFn, MetricFn, ModelOutputError, TrainingDiverged,
                               iterate_batches)


def set_threads(config: ExperimentConfig, workers: int = 1) -> int:
    """Torch threads for this process: ``config.threads`` or cores / workers (at least 1)."""
    threads = config.threads or max(1, (os.cpu_count() or 1) // max(1, workers))
    torch.set_num_threads(threads)
    return threads


def model_factory_for(config: ExperimentConfig, data: DataBundle) -> Callable[[], nn.Module]:
    def factory() -> nn.Module:
        return build_model(config.model, data.input_shape, data.num_classes)
    return factory


def build_study_context(config: ExperimentConfig, *, log: Callable[[str], None] = print,
                        data: DataBundle | None = None,
                        model_factory: Callable[[], nn.Module] | None = None,
                        loss_fn: LossFn | None = None, metric_fn: MetricFn | None = None,
                        dense_key: str | None = None,
                        dense_state: Mapping[str, torch.Tensor] | None = None,
                        basis: CostBasis | None = None, keep_dense: bool = False,
                        ) -> tuple[EvalContext, SearchSpace]:
    """Data, dense reference (cached in the study folder), layers, cost profile and the space.

    ``data`` / ``model_factory`` replace the config's data set and model (Python API); the dense
    reference is then keyed by ``dense_key`` or, without one, by ``user_dense_keys``.
    ``dense_state``: the trained dense reference, when the caller has it already (a Ray trial on
    another node gets it through Ray's object store instead of the study folder).
    ``basis``: the model's cost basis as the process that started this one found it (a worker
    process): FlopCounterMode's count is then skipped, and with it the import of
    ``torch._dynamo`` its first use costs (about a second of every worker's start-up).
    ``keep_dense``: the study exists, so a ``dense.pt`` made with other settings is refused, not
    retrained (its trials were measured against it).
    """
    parts = model_and_data(config, data, model_factory, basis)
    if basis is None and "channel" in config.space.granularities:   # (a worker's parent did)
        for layer, why in check_channel_tracing(parts).items():
            log(f"channel pruning leaves {layer} alone: {why}")
    space = _make_space(list(parts.basis.layers), config.space, config, parts.model_name)  # early
    context = eval_context(config, parts, log=log, loss_fn=loss_fn, metric_fn=metric_fn,
                           dense_key=dense_key, dense_state=dense_state, keep_dense=keep_dense)
    return context, bounded_space(config, context, space, log=log)


@dataclass(frozen=True)
class ModelAndData:
    """What the config (or the Python API) names: device, data, model factory and its costs."""

    device: torch.device
    data: DataBundle
    factory: Callable[[], nn.Module]
    probe: nn.Module
    basis: CostBasis
    from_config: bool       # neither data nor model came from Python objects
    model_name: str = ""    # the config's model name, or ``python: <factory>``


def check_channel_tracing(parts: ModelAndData) -> dict[str, str]:
    """Channel pruning needs torch-pruning to trace the model's channel dependencies: a model it
    cannot trace (shufflenet's channel shuffle: a ZeroDivisionError inside it) is refused here in
    one line, not after the dense reference trained, with every channel trial failing. Returns
    the layers whose channels are left alone, with why (``ChannelCoupling.unfaithful``)."""
    try:
        coupling = ChannelCoupling(parts.probe, torch.zeros((1, *parts.data.input_shape)))
        coupling.trace()
        return coupling.unfaithful
    except Exception as exc:   # torch-pruning raises whatever its tracing meets
        raise ConfigError(f"space.granularities: 'channel' needs torch-pruning to trace the "
                          f"channel dependencies of model '{parts.model_name}', which failed "
                          f"({error_summary(exc)}); leave 'channel' out (unstructured and n:m "
                          f"prune any model)") from exc


def model_and_data(config: ExperimentConfig, data: DataBundle | None = None,
                   model_factory: Callable[[], nn.Module] | None = None,
                   basis: CostBasis | None = None) -> ModelAndData:
    """Load the data and build the model once (bad names and shapes fail here, in seconds)."""
    name = config.model.name if model_factory is None else f"python: {_qualified(model_factory)}"
    try:
        device = resolve_device(config.device)
        loaded = data or load_data(config.data)
        factory = splitting(model_factory) if model_factory else model_factory_for(config, loaded)
        probe = _probe(factory, user_code=model_factory is not None, name=name)
    except SetupError as exc:
        raise ConfigError(str(exc)) from exc
    except ValueError as exc:
        if "device" not in str(exc):
            raise
        raise ConfigError(str(exc)) from exc
    if not isinstance(probe, nn.Module):
        raise ConfigError(f"the model factory returned {type(probe).__name__}, "
                          f"expected a torch.nn.Module")
    if basis is None:
        try:          # the first forward pass: a model built for other inputs fails here
            basis = cost_basis(probe, loaded.input_shape)
        except (RuntimeError, ValueError, TypeError, IndexError) as exc:
            tokens = any(w in str(exc) for w in ("indices", "Long", "Int"))   # an embedding
            dtype = any(w in str(exc) for w in ("Double", "Half", "BFloat16"))
            hint = ("; the probe feeds float zeros: a model of token ids casts and clamps them "
                    "in forward, x.long().clamp(0, vocab - 1), as tiny_gpt does" if tokens else
                    "; the search runs models in float32 (it prunes and quantizes float32 "
                    "weights): build it in float32 (model.float()) and feed float32 inputs"
                    if dtype else
                    "; build it for that input (model.options, or the factory's input_shape / "
                    "in_channels arguments)")
            raise ConfigError(f"model '{name}' failed on one input of the data's shape "
                              f"{list(loaded.input_shape)} ({error_summary(exc, 300)}){hint}"
                              ) from exc
    check_real_inputs(probe, loaded, name)
    empty = [f"{x.name} {list(x.weight_shape)}" for x in basis.layers if not x.params]
    if empty:   # e.g. hidden: [0]; it trained, then the cost model divided by zero
        raise ConfigError(f"model '{name}': layer(s) {', '.join(empty)} have no weights; every "
                          f"Conv2d / Linear layer needs at least one (check model.options: a "
                          f"width or hidden size of 0)")
    return ModelAndData(device, loaded, factory, probe, basis,
                        from_config=model_factory is None and data is None, model_name=name)


def check_real_inputs(probe: nn.Module, data: DataBundle, name: str) -> None:
    """Two training samples through the model, before anything trains: inputs the model cannot
    take (uint8 images into float weights) are one line naming their dtype, not a traceback from
    the dense training."""
    with torch.random.fork_rng(devices=[]):    # (a user's shuffling loader draws a seed)
        x, _ = next(iterate_batches(data.train, 2, torch.device("cpu"), shuffle=False))
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            probe.eval()(x[:2])
    except (RuntimeError, ValueError, TypeError, IndexError) as exc:
        raise ConfigError(f"model '{name}' failed on two samples of the training data (inputs "
                          f"{str(x.dtype).replace('torch.', '')}, shape {list(x.shape[1:])}: "
                          f"{error_summary(exc, 300)}); convert them where the data is made "
                          f"(images: x.float() / 255) or at the start of forward") from exc


def user_data(config: ExperimentConfig, train: Any, val: Any = None, test: Any = None,
              num_classes: int | None = None,
              preprocessing: str | Mapping[str, Any] | None = None) -> DataBundle | None:
    """A bundle from the user's splits (Datasets, DataLoaders or tensors), missing ones carved
    from ``train`` with the config's fractions and seed: what ``run_search`` was given, and what
    retraining a reopened study of Python objects is given again (None: no ``train``)."""
    if train is None:
        if val is not None or test is not None:
            raise ConfigError("val/test were given without train; pass train as well")
        return None
    settings = config.data
    try:
        return bundle_from_splits(train, val, test, val_fraction=settings.val_fraction,
                                  test_fraction=settings.test_fraction, seed=settings.split_seed,
                                  num_classes=num_classes, name=type(inner_dataset(train)).__name__,
                                  preprocessing=preprocessing)
    except SetupError as exc:
        raise ConfigError(str(exc)) from exc


def _qualified(obj: object) -> str:
    kind = obj if callable(obj) and hasattr(obj, "__qualname__") else type(obj)
    return f"{getattr(kind, '__module__', '?')}.{getattr(kind, '__qualname__', kind)}"


def _probe(factory: Callable[[], nn.Module], *, user_code: bool, name: str) -> nn.Module:
    """The first model the factory builds. A Python factory (API) that raises is named, as a
    config's ``module:callable`` is by ``trainers.models.build``."""
    try:
        return factory()
    except SetupError:
        raise
    except Exception as exc:
        if not user_code:
            raise
        raise SetupError(f"model factory '{name}' raised {type(exc).__name__}: {exc}") from exc


def context_basis(context: EvalContext) -> CostBasis:
    """The cost basis ``context`` was built from (to hand to a worker process)."""
    return CostBasis(layers=tuple(context.layers), other_params=context.other_params,
                     other_flops=context.other_flops, free_flops=context.free_flops,
                     free_elems=context.free_elems)


def eval_context(config: ExperimentConfig, parts: ModelAndData, *,
                 log: Callable[[str], None] = print, loss_fn: LossFn | None = None,
                 metric_fn: MetricFn | None = None,
                 dense_key: str | tuple[str, ...] | None = None,
                 dense_state: Mapping[str, torch.Tensor] | None = None,
                 keep_dense: bool = False) -> EvalContext:
    """The evaluation context of every trial: the dense reference (loaded from the study folder,
    or trained once; with ``keep_dense`` never retrained) plus the fine-tuning, cost and pruning
    settings."""
    if loss_fn is None:     # cross-entropy's targets; a user's own loss defines its own
        try:
            check_class_labels(parts.data)
        except LabelError as exc:
            raise ConfigError(f"data '{parts.data.name}': {exc}") from exc
    if dense_key is None:
        dense_key = (config.dense_key() if parts.from_config and loss_fn is None
                     else user_dense_keys(parts.probe, parts.data, config, loss_fn))
    if dense_state is None:
        raise_if_requested()     # before minutes of dense training, a Ctrl-C Python swallowed
        dense_state = dense_reference(config, parts, dense_key, loss_fn=loss_fn, log=log,
                                      replace=not keep_dense)
    return EvalContext(
        model_factory=parts.factory, data=parts.data, dense_state=dense_state,
        layers=list(parts.basis.layers), finetune=config.finetune,
        batch_size=config.data.batch_size, device=parts.device,
        profile=load_profile(config.cost.energy_profile),
        other_params=parts.basis.other_params, other_flops=parts.basis.other_flops,
        free_flops=parts.basis.free_flops, free_elems=parts.basis.free_elems,
        activation_bits=config.cost.activation_bits, watts_per_core=config.cost.watts_per_core,
        energy_meter=config.cost.energy_meter, powercap_root=config.cost.powercap_root,
        latency=config.cost.latency_settings(), measure_test=config.cost.measure_test_accuracy,
        pruning=config.pruning, dense_train=config.dense,
        loss_fn=loss_fn, metric_fn=metric_fn)


def dense_reference(config: ExperimentConfig, parts: ModelAndData,
                    dense_key: str | tuple[str, ...], *,
                    loss_fn: LossFn | None = None, log: Callable[[str], None] = print,
                    replace: bool = True) -> Mapping[str, torch.Tensor]:
    """The dense reference (cached, or trained now; ``replace`` False: an existing study's, never
    retrained); what the user can fix in a failed training (a model output, labels, a diverging
    loss) or a reference made with other settings is a ``ConfigError`` naming it."""
    try:
        return load_or_train_dense(
            config.study_dir / "dense.pt", dense_key, parts.factory, parts.data, config.dense,
            batch_size=config.data.batch_size, device=parts.device, seed=config.seed,
            loss_fn=loss_fn, log=log, replace=replace)
    except DenseMismatch as exc:
        raise ConfigError(f"study '{config.study}': {exc}") from exc
    except ModelOutputError as exc:
        raise ConfigError(f"model '{parts.model_name}': {exc}") from exc
    except LabelError as exc:
        raise ConfigError(f"data '{parts.data.name}': {exc}") from exc
    except TrainingDiverged as exc:
        dense = config.dense
        raise ConfigError(
            f"dense: training the dense reference diverged (TrainingDiverged: {exc}) with "
            f"dense.optimizer '{dense.optimizer}', dense.lr {dense.lr:g}, dense.weight_decay "
            f"{dense.weight_decay:g}, dense.epochs {dense.epochs}; lower dense.lr (or change "
            f"dense.optimizer), or check the data for NaN or infinite inputs") from exc


def bounded_space(config: ExperimentConfig, context: EvalContext, space: SearchSpace | None = None,
                  *, log: Callable[[str], None] = print) -> SearchSpace:
    """The study's space with its per-layer bounds from the sensitivity analysis, when
    ``space.sensitivity_max_drop`` asks for them (they need the dense reference, hence after it)."""
    space = space or _make_space(list(context.layers), config.space, config)
    if (drop := config.space.sensitivity_max_drop) is None:
        return space
    from search.run.sensitivity import bounds_for_space

    bounds = bounds_for_space(config.study_dir, context, space, drop, log=log)
    return _make_space(list(context.layers), config.space.with_max_sparsity(bounds), config)


def _make_space(layers: list, settings: SpaceSettings, config: ExperimentConfig,
                model_name: str | None = None) -> SearchSpace:
    try:
        return SearchSpace(layers, settings, seed=config.seed,
                           criteria_by_granularity=criteria_by_granularity(settings),
                           nm_block=config.pruning.nm_block)
    except ValueError as exc:
        message = str(exc) if str(exc).startswith("space.") else f"space: {exc}"
        raise ConfigError(f"{message} (model '{model_name or config.model.name}')") from exc
