"""Every allowed criterion x granularity x schedule trains on the built-in CNN (tiny data)."""
from __future__ import annotations

import functools

import pytest
import torch

from conftest import tiny_eval_context
from spaces.candidate import Candidate
from trainers.eval_context import EvalContext
from trainers.models import SmallCNN
from trainers.pruning import CRITERIA, GRANULARITIES, current_masks
from trainers.pruning.masks import current_param_masks
from trainers.schedules import SCHEDULES, agp_steps, run_schedule
from trainers.trial import evaluate_candidate

SHAPE = (1, 8, 8)


def make_context() -> EvalContext:
    return tiny_eval_context(functools.partial(SmallCNN, 1, 4, width=4))   # picklable factory


@pytest.fixture(scope="module")
def context():
    # One thread: tiny models gain nothing from more, and busy CI cores make them spin.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield make_context()
    torch.set_num_threads(threads)


def candidate_for(context, criterion, granularity, schedule, **options) -> Candidate:
    names = [l.name for l in context.layers]
    return Candidate(sparsity={n: 0.5 for n in names[:-1]}, bits={n: 8 for n in names},
                     criterion=criterion, granularity=granularity, schedule=schedule, seed=1,
                     options=options)


COMBOS = [(c, g, s) for g in GRANULARITIES for c, cls in CRITERIA.items()
          if g in cls.granularities for s in SCHEDULES]


@pytest.mark.parametrize("criterion,granularity,schedule", COMBOS)
def test_every_allowed_combination_trains_and_keeps_its_masks(context, criterion, granularity,
                                                              schedule):
    candidate = candidate_for(context, criterion, granularity, schedule)
    run = run_schedule(candidate, context)
    names = [l.name for l in context.layers]
    modules = dict(run.model.named_modules())
    x = torch.randn(3, *SHAPE)
    assert run.model(x).shape == (3, 4)
    assert run.train_flops > 0
    if run.shrunk:
        # during_training + channel: physically half the channels, quantizers attached.
        assert schedule == "during_training" and granularity == "channel"
        assert modules["features.0"].out_channels == 2
        assert modules["classifier.1"].out_features == 64
        assert run.train_flops < run.train_flops_dense
        assert set(current_masks(run.model)) == set(names)
        return
    masks = current_masks(run.model)
    for name in names[:-1]:
        weight = modules[name].weight.detach()
        mask = masks[name]
        # Pruned weights are still exactly zero after the fine-tune / training.
        assert torch.all(weight[~mask] == 0)
        if granularity == "channel":
            rows = mask.reshape(mask.shape[0], -1)
            assert int((~rows.any(dim=1)).sum()) == round(0.5 * mask.shape[0])
            assert torch.all(rows.all(dim=1) | ~rows.any(dim=1))
            assert torch.all(current_param_masks(run.model)[(name, "bias")] == rows.any(dim=1))
        elif granularity == "n:m":
            # 2 of every 4 along the input channels; with fewer than 4 input channels (the first
            # conv has 1) the partial block keeps min(2, size) weights.
            blocks = mask.movedim(1, -1).reshape(-1, mask.shape[1])
            full = blocks.shape[1] // 4 * 4
            if full:
                assert blocks[:, :full].reshape(-1, 4).sum(dim=1).eq(2).all()
        else:
            assert int((~mask).sum()) == round(0.5 * mask.numel())
    assert masks[names[-1]].all()


def test_channel_metrics_are_those_of_the_shrunk_model(context):
    candidate = candidate_for(context, "l2", "channel", "oneshot")
    result = evaluate_candidate(candidate, context)
    dense_flops = 2 * sum(l.macs for l in context.layers)
    # Every hidden layer keeps half its outputs and inputs: between 1/4 and 1/2 of the FLOPs.
    assert dense_flops / 4 <= result.metrics["flops"] < dense_flops / 2
    assert result.metrics["flops"] == result.metrics["flops_dense"]
    assert result.metrics["params_nonzero"] < 0.5 * (sum(l.params for l in context.layers)
                                                     + context.other_params)


def test_during_training_records_savings_against_dense(context):
    candidate = candidate_for(context, "magnitude", "channel", "during_training")
    result = evaluate_candidate(candidate, context)
    metrics = result.metrics
    for key in ("train_seconds_dense", "train_energy_j_dense", "train_time_saved",
                "train_energy_saved", "train_flops_saved"):
        assert key in metrics
    # Half the epochs at about a quarter of the FLOPs: ~37% fewer training FLOPs.
    assert 0.3 < metrics["train_flops_saved"] < 0.45
    assert result.info["dense_train_energy_source"] == "estimate"


def test_regularisation_and_distillation_change_training(context):
    base = run_schedule(candidate_for(context, "magnitude", "unstructured", "gradual"), context)
    reg = run_schedule(candidate_for(context, "magnitude", "unstructured", "gradual", reg=0.05),
                       context)
    kd = run_schedule(candidate_for(context, "magnitude", "unstructured", "oneshot", distill=True),
                      context)
    plain = run_schedule(candidate_for(context, "magnitude", "unstructured", "oneshot"), context)
    x = torch.randn(4, *SHAPE)
    assert not torch.allclose(base.model(x), reg.model(x))
    assert not torch.allclose(kd.model(x), plain.model(x))
    # Distillation's teacher (the dense model) runs one forward pass per sample-step: counted.
    from trainers import method_parts
    teacher = method_parts.forward_flops(context.extras["teacher"], context)
    epochs = method_parts.finetune_settings(
        candidate_for(context, "magnitude", "unstructured", "oneshot"), context).epochs
    assert kd.train_flops == pytest.approx(
        plain.train_flops + teacher * method_parts.train_samples(context) * epochs)
    # The L1 penalty shrinks the surviving weights.
    w_base = base.model.features[2].weight.abs().sum()
    w_reg = reg.model.features[2].weight.abs().sum()
    assert w_reg < w_base


def test_during_training_cuts_after_at_least_one_dense_and_before_the_last_epoch():
    from trainers.schedules import cut_epoch

    assert cut_epoch(0.2, 40) == 8 and cut_epoch(0.5, 2) == 1
    assert cut_epoch(0.2, 2) == 1          # rounded to 0 it pruned at initialisation
    assert cut_epoch(0.9, 2) == 1          # rounded to 2 nothing trained after the cut
    assert cut_epoch(0.0, 2) == 0 and cut_epoch(0.3, 1) == 0


def test_agp_steps_hand_computed():
    plan = agp_steps(total_steps=100, steps=4, end=0.8)
    assert list(plan) == [20, 40, 60, 80 - 1 + 1]
    assert plan[20] == pytest.approx(1 - 0.75 ** 3)
    assert plan[40] == pytest.approx(1 - 0.5 ** 3)
    assert plan[80] == 1.0
    assert agp_steps(1, 8, 0.75) == {0: 1.0}
    assert agp_steps(0, 8, 0.75) == {0: 1.0}


def test_gradual_pruner_steps_are_monotone_and_reach_the_target(context):
    candidate = candidate_for(context, "magnitude", "unstructured", "gradual")
    from trainers.method_parts import dense_model, make_pruner

    model = dense_model(context)
    pruner = make_pruner(candidate, context)
    seen = []
    for fraction in (1 - (1 - k / 3) ** 3 for k in range(1, 4)):
        masks = pruner.step(model, fraction)
        seen.append(int((~masks.weights["features.2"]).sum()))
    total = model.features[2].weight.numel()
    assert seen == sorted(seen) and seen[-1] == round(0.5 * total)
    assert seen[0] == round(0.5 * (1 - (2 / 3) ** 3) * total)


def test_context_pickles_after_channel_trials(context):
    import pickle

    run_schedule(candidate_for(context, "fpgm", "channel", "oneshot", distill=True), context)
    assert "channel_coupling" in context.extras and "teacher" in context.extras
    clone = pickle.loads(pickle.dumps(context))
    again = run_schedule(candidate_for(clone, "fpgm", "channel", "gradual"), clone)
    assert again.masks.channels


def test_nm_trial_is_costed_with_its_pattern(context):
    result = evaluate_candidate(candidate_for(context, "magnitude", "n:m", "oneshot"), context)
    assert result.info["sparsity_pattern"] == "N:4"
    dense_flops = 2 * sum(l.macs for l in context.layers)
    assert result.metrics["flops"] < 0.75 * dense_flops       # surviving weights only
