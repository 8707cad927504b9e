"""One pass per trial: the candidate is built and pruned once (gradients collected once) and that
one pruned model serves validity, early stopping's costs and training; latency is timed once per
exported shape; the test split can be left out of the search; the dense starting point is a copy
of a cached template, as a fresh build would leave it."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch

import trainers.costs.latency as latency
import trainers.method_parts as method_parts
import trainers.pruning.pruner as pruner
from search.config import config_from_dict
from search.run.context import build_study_context
from spaces.candidate import Candidate
from trainers.method_parts import prepare_candidate
from trainers.trial import (evaluate_candidate, known_costs, reference_metrics,
                            remember_dense_latency)


@pytest.fixture(scope="module")
def study_context(tmp_path_factory):
    config = config_from_dict({
        "study": "one-pass", "output_dir": str(tmp_path_factory.mktemp("one-pass")), "threads": 1,
        "data": {"name": "synthetic", "options": {"samples": 160}},
        "model": {"name": "cnn", "options": {"width": 4}},
        "dense": {"epochs": 1}, "finetune": {"epochs": 1},
        "cost": {"latency_repeats": 2, "latency_warmup": 0},
        "space": {"criteria": ["taylor", "magnitude", "random", "l2"],
                  "granularities": ["unstructured", "channel"]},
        "search": {"n_trials": 2, "baseline_sparsities": []}})
    return build_study_context(config, log=lambda _: None)


def _candidate(space, criterion: str, granularity: str, sparsity: float = 0.5) -> Candidate:
    return replace(space.uniform_candidate(sparsity, 8), criterion=criterion,
                   granularity=granularity)


class Spy:
    """Counts the calls of a real function and runs it."""

    def __init__(self, function):
        self.function = function
        self.calls = 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.function(*args, **kwargs)


@pytest.mark.parametrize("granularity", ["unstructured", "channel"])
def test_a_trial_prunes_once_and_collects_gradients_once(study_context, monkeypatch, granularity):
    context, space = study_context
    candidate = _candidate(space, "taylor", granularity)
    gradients = Spy(pruner.collect_gradient_stats)
    steps = Spy(pruner.Pruner.step)
    monkeypatch.setattr(pruner, "collect_gradient_stats", gradients)
    monkeypatch.setattr(pruner.Pruner, "step", lambda self, *a, **k: steps(self, *a, **k))
    # What the objective does: prepare, place it for early stopping, evaluate.
    prepared = prepare_candidate(candidate, context)
    costs = known_costs(candidate, context, prepared)
    result = evaluate_candidate(candidate, context, prepared=prepared)
    assert result.status == "complete"
    assert (gradients.calls, steps.calls) == (1, 1)
    if granularity == "channel":                   # costed on the same pruned shapes
        assert costs["flops"] == result.metrics["flops"]
    assert prepared.taken                          # training went on from the pruned model


@pytest.mark.parametrize("criterion,granularity", [("magnitude", "unstructured"),
                                                   ("random", "unstructured"),
                                                   ("taylor", "channel")])
def test_a_prepared_trial_trains_exactly_like_a_fresh_one(study_context, criterion, granularity):
    context, space = study_context
    candidate = _candidate(space, criterion, granularity, 0.6)
    fresh = evaluate_candidate(candidate, context).metrics
    reused = evaluate_candidate(candidate, context,
                                prepared=prepare_candidate(candidate, context)).metrics
    for key in ("accuracy", "test_accuracy", "flops", "size_bytes", "energy_uj", "train_flops"):
        assert reused[key] == fresh[key], key


def test_a_prepared_candidate_trains_once(study_context):
    context, space = study_context
    prepared = prepare_candidate(_candidate(space, "magnitude", "unstructured"), context)
    prepared.take()
    with pytest.raises(RuntimeError, match="trains once"):
        prepared.take()


def test_latency_is_timed_once_per_exported_shape(study_context, monkeypatch):
    context, space = study_context
    context.extras.pop("latency_ms", None)
    timed = Spy(latency.measure_latency_ms)
    monkeypatch.setattr(latency, "measure_latency_ms", timed)
    dense = reference_metrics(space.dense_candidate(), context)["latency_ms"]
    first = evaluate_candidate(_candidate(space, "magnitude", "unstructured", 0.5), context)
    second = evaluate_candidate(_candidate(space, "random", "unstructured", 0.8), context)
    assert timed.calls == 1                      # dense shapes: the reference's measurement
    assert first.metrics["latency_ms"] == second.metrics["latency_ms"] == dense
    channel = evaluate_candidate(_candidate(space, "l2", "channel", 0.5), context)
    assert timed.calls == 2                      # smaller shapes: timed on their own
    assert channel.metrics["flops"] < first.metrics["flops_dense"]
    evaluate_candidate(_candidate(space, "taylor", "channel", 0.5), context)
    assert timed.calls == 2                      # the same shapes again: not timed again


def test_a_resumed_context_takes_the_stored_dense_latency_for_the_dense_shapes(study_context,
                                                                             monkeypatch):
    """A resume (or another worker) builds a new context: the dense shapes keep the figure stored
    with the dense reference instead of a new measurement with other noise."""
    context, space = study_context
    context.extras.pop("latency_ms", None)
    timed = Spy(latency.measure_latency_ms)
    monkeypatch.setattr(latency, "measure_latency_ms", timed)
    threads = torch.get_num_threads()
    remember_dense_latency(context, {"latency_ms": 12.345}, threads + 1)   # timed at another
    first = evaluate_candidate(_candidate(space, "magnitude", "unstructured", 0.5), context)
    assert first.metrics["latency_ms"] != 12.345 and timed.calls == 1      # count: timed here
    context.extras.pop("latency_ms", None)
    remember_dense_latency(context, {"latency_ms": 12.345}, threads)       # as a resume does
    found = evaluate_candidate(_candidate(space, "magnitude", "unstructured", 0.5), context)
    assert found.metrics["latency_ms"] == 12.345 and timed.calls == 1
    context.extras.pop("latency_ms", None)


def test_the_test_split_can_be_left_out_of_the_search(study_context):
    context, space = study_context
    quiet = replace(context, measure_test=False)
    metrics = evaluate_candidate(_candidate(space, "magnitude", "unstructured"), quiet).metrics
    assert "test_accuracy" not in metrics and 0 <= metrics["accuracy"] <= 1


def test_the_dense_starting_point_is_copied_as_a_fresh_build_would_leave_it(study_context):
    """From the second candidate on, the dense reference is a copy of a cached template: the
    same weights and the same random state after it as ``manual_seed`` + a fresh build."""
    context, _ = study_context
    original, built = context.model_factory, []

    def factory():
        built.append(1)
        return original()

    context = replace(context, model_factory=factory, extras={})
    for _ in range(3):   # the first call builds (and caches), the others copy
        torch.manual_seed(123)
        fresh = method_parts.dense_model(context)
        fresh_draw = torch.rand(4)
        torch.manual_seed(999)   # whatever the state before: the seed decides
        copied = method_parts.seeded_dense_model(context, 123)
        assert torch.equal(torch.rand(4), fresh_draw)
        for (name, a), (_, b) in zip(fresh.state_dict().items(), copied.state_dict().items()):
            assert torch.equal(a, b), name
        assert all(p.data_ptr() != q.data_ptr()
                   for p, q in zip(copied.parameters(), context.extras["dense_template"][1]
                                   .parameters()))
    assert len(built) == 3 + 1   # three fresh builds for the comparison, one for the template
    method_parts.seeded_dense_model(context, 7)   # another seed: built again
    assert len(built) == 5


class _Uncopyable(torch.nn.Linear):
    def __deepcopy__(self, memo):
        raise TypeError("cannot copy this model")


def test_a_model_that_cannot_be_copied_is_built_each_time(study_context):
    context, _ = study_context
    built = []

    def factory():
        built.append(1)
        return _Uncopyable(3, 2)

    context = replace(context, model_factory=factory, dense_state=_Uncopyable(3, 2).state_dict(),
                      extras={})
    first = method_parts.seeded_dense_model(context, 5)
    draw = torch.rand(2)
    second = method_parts.seeded_dense_model(context, 5)
    assert torch.equal(torch.rand(2), draw) and len(built) == 2
    assert torch.equal(first.weight, second.weight) and first is not second
