"""Build the evaluation context and search space of a study (once, outside any trial)."""
from __future__ import annotations

import os
from typing import Callable

import torch
from torch import nn

from search.config import ExperimentConfig, criteria_by_granularity
from search.schema import ConfigError
from spaces.space import SearchSpace
from trainers.context import EvalContext
from trainers.costs import cost_basis, load_profile
from trainers.data import DataBundle, load_data
from trainers.device import resolve_device
from trainers.models import build_model
from trainers.reference import load_or_train_dense


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
                        ) -> tuple[EvalContext, SearchSpace]:
    """Data, dense reference (cached in the study folder), layers, cost profile and the space."""
    device = resolve_device(config.device)
    data = data or load_data(config.data)
    factory = model_factory or model_factory_for(config, data)
    probe = factory()
    basis = cost_basis(probe, data.input_shape)
    layers = list(basis.layers)
    dense_state = load_or_train_dense(
        config.study_dir / "dense.pt", config.dense_key(), factory, data, config.dense,
        batch_size=config.data.batch_size, device=device, seed=config.seed, log=log)
    context = EvalContext(
        model_factory=factory, data=data, dense_state=dense_state, layers=layers,
        finetune=config.finetune, batch_size=config.data.batch_size, device=device,
        profile=load_profile(config.cost.energy_profile),
        other_params=basis.other_params, other_flops=basis.other_flops,
        activation_bits=config.cost.activation_bits, watts_per_core=config.cost.watts_per_core,
        energy_meter=config.cost.energy_meter, powercap_root=config.cost.powercap_root,
        latency=config.cost.latency_settings(), pruning=config.pruning, dense_train=config.dense)
    try:
        space = SearchSpace(layers, config.space, seed=config.seed,
                            criteria_by_granularity=criteria_by_granularity(config.space))
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    return context, space
