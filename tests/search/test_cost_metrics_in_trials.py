"""Every trial records the cost metrics; any of them can be an objective; labels say their nature."""
from __future__ import annotations

import pandas as pd
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from search.api import run_search
from search.config import config_from_dict
from search.run.context import build_study_context
from search.objectives import objective_metrics
from search.decide.tables import format_front
from search.schema import ConfigError
from spaces.candidate import Candidate
from trainers.costs import LatencySettings, metric_label
from trainers.costs.metrics import known_before_training
from trainers.trial import build_candidate_model, cost_metrics, evaluate_candidate

COST_KEYS = {"flops_dense", "flops", "bops", "params_nonzero", "size_bytes", "energy_uj",
             "train_energy_j", "train_seconds", "latency_ms", "accuracy", "test_accuracy"}


def tiny_config(tmp_path, **cost):
    return config_from_dict({
        "study": "costs", "output_dir": str(tmp_path), "threads": 1,
        "data": {"name": "synthetic", "options": {"samples": 160}},
        "model": {"name": "cnn", "options": {"width": 4}},
        "dense": {"epochs": 1}, "finetune": {"epochs": 1},
        "cost": {"powercap_root": str(tmp_path / "no-powercap"), "latency_repeats": 3, **cost},
        "search": {"n_trials": 2, "baseline_sparsities": [], "enqueue_dense": True,
                   "objectives": {"accuracy": "max", "latency_ms": "min", "size_bytes": "min"}},
    })


@pytest.fixture(scope="module")
def study_context(tmp_path_factory):
    config = tiny_config(tmp_path_factory.mktemp("ctx"))
    return build_study_context(config, log=lambda _: None)


def test_trial_records_every_cost_metric_and_its_energy_source(study_context):
    context, space = study_context
    candidate = space.uniform_candidate(0.5, 8)
    result = evaluate_candidate(candidate, context)
    assert COST_KEYS <= set(result.metrics)
    assert result.info["energy_source"] == "estimate"    # no counters on this machine
    assert result.metrics["train_energy_j"] > 0 and result.metrics["latency_ms"] > 0
    assert result.metrics["flops"] < result.metrics["flops_dense"]
    assert result.metrics["bops"] == pytest.approx(
        sum(layer.macs * candidate.density(layer.name) * candidate.bits[layer.name] * 32
            for layer in context.layers), rel=1e-2)


def test_dense_cost_equals_flop_counter_of_the_model(study_context):
    context, space = study_context
    model = context.model_factory()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, *context.data.input_shape))
    metrics = cost_metrics(space.dense_candidate(), context)
    assert metrics["flops_dense"] == metrics["flops"] == counter.get_total_flops()
    assert metrics["size_bytes"] == 4 * sum(p.numel() for p in model.parameters())


def test_channel_candidate_costs_equal_flop_counter_of_the_shrunk_model(study_context):
    from trainers.pruning.masks import current_masks
    from trainers.pruning.structured import shrink_model

    context, space = study_context
    names = [layer.name for layer in context.layers]
    candidate = Candidate(sparsity={name: 0.5 for name in names[:-1]}, bits={names[0]: 8},
                          granularity="channel")
    model = build_candidate_model(candidate, context)
    example = torch.zeros(1, *context.data.input_shape)
    small = shrink_model(model, example, current_masks(model))
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        small(example)
    metrics = cost_metrics(candidate, context, model)
    assert metrics["flops"] == metrics["flops_dense"] == counter.get_total_flops()
    assert metrics["flops"] < cost_metrics(space.dense_candidate(), context)["flops"]
    assert metrics["params_nonzero"] == sum(p.numel() for p in small.parameters())
    # Untrained rebuild (before training) gives the same shape, hence the same cost.
    assert cost_metrics(candidate, context) == metrics


def test_costs_read_the_masks_the_granularity_really_made(study_context):
    from trainers.pruning.masks import folded_copy

    context, _ = study_context
    names = [layer.name for layer in context.layers]
    # n:m with blocks of 4 rounds 0.6 to 0.5 (2 of every 4 weights kept).
    candidate = Candidate(sparsity={name: 0.6 for name in names[:-1]}, bits={},
                          granularity="n:m")
    model = build_candidate_model(candidate, context)
    metrics = cost_metrics(candidate, context, model)
    exported = dict(folded_copy(model).named_modules())
    kept = sum(int((exported[layer.name].weight != 0).sum()) for layer in context.layers)
    assert metrics["params_nonzero"] == kept + context.other_params
    # About half of each pruned layer survives, more than the 40% asked for.
    assert metrics["params_nonzero"] > cost_metrics(candidate, context)["params_nonzero"]
    linear = context.layers[-2]
    assert int((exported[linear.name].weight != 0).sum()) == linear.params // 2


def test_latency_can_be_turned_off(tmp_path, study_context):
    context, space = study_context
    kept = context.latency
    context.latency = LatencySettings(enabled=False)
    try:
        result = evaluate_candidate(space.dense_candidate(), context)
    finally:
        context.latency = kept
    assert "latency_ms" not in result.metrics


def test_costs_known_before_training_are_the_registrys(study_context):
    # Early stopping places a candidate by these before training (trainers.costs.metrics).
    context, space = study_context
    for candidate in (space.uniform_candidate(0.5, 8), space.dense_candidate()):
        assert set(cost_metrics(candidate, context)) == set(known_before_training())


def test_every_recorded_metric_can_be_an_objective():
    assert COST_KEYS - {"test_accuracy"} <= set(objective_metrics())
    assert "test_accuracy" not in objective_metrics()


def test_default_objectives_stay_accuracy_flops_energy():
    assert config_from_dict({}).search.objectives.metrics == ["accuracy", "flops", "energy_uj"]


def test_latency_objective_needs_latency_measurement(tmp_path):
    with pytest.raises(ConfigError, match="search.objectives uses latency_ms but "
                                          "cost.measure_latency is false"):
        tiny_config(tmp_path, measure_latency=False)
    with pytest.raises(ConfigError, match="search.constraints.max_latency_ms uses latency_ms"):
        config_from_dict({"cost": {"measure_latency": False},
                          "search": {"constraints": {"max_latency_ms": 2.0}}})


def test_unknown_meter_is_a_config_error():
    with pytest.raises(ConfigError, match=r"cost.energy_meter must be one of \['auto', 'nvml', "
                                          r"'rapl', 'estimate'\], got 'wattmeter'"):
        config_from_dict({"cost": {"energy_meter": "wattmeter"}})


@pytest.mark.slow
def test_search_on_latency_and_size_writes_labelled_tables(tmp_path):
    result = run_search(tiny_config(tmp_path), log=lambda _: None)
    trials = pd.read_csv(result.folder / "trials.csv")
    assert set(trials["energy_source"]) == {"estimate"}
    assert trials["latency_ms"].gt(0).all() and trials["size_bytes"].gt(0).all()
    text = format_front(result.front(), result.config.search.objectives.metrics)
    assert "latency_ms(meas)" in text and "energy_uJ(est)" in text and "train_J(est)" in text


def test_labels_say_estimated_or_measured():
    assert metric_label("energy_uj") == "energy_uj (est)"
    assert metric_label("latency_ms") == "latency_ms (meas)"
    assert metric_label("flops") == "flops (counted)"
    assert metric_label("train_energy_j", "rapl") == "train_energy_j (meas: rapl)"
    assert metric_label("train_energy_j", "estimate") == "train_energy_j (est: estimate)"
    with pytest.raises(ValueError, match="metric must be one of"):
        metric_label("speed")
