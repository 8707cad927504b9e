"""Starting points: the dense reference and the hand-made sweeps, enqueued before the sampler."""
from __future__ import annotations

import optuna

from search.config import ExperimentConfig
from spaces.candidate import Candidate
from spaces.space import SearchSpace
from trainers.eval_context import EvalContext
from trainers.pruning.allocation import ALLOCATIONS


def starting_candidates(space: SearchSpace, context: EvalContext, config: ExperimentConfig
                        ) -> list[tuple[str, Candidate]]:
    """(origin, candidate): the dense reference and the hand-made sweeps a user would try first
    (the same sparsity in every layer; one global magnitude threshold; the LAMP and ERK allocation
    rules: ``ALLOCATIONS``), at each baseline bit-width.
    Enqueued before the sampler's own trials, so the front is never worse than the by-hand result.
    """
    found: list[tuple[str, Candidate]] = []
    if config.search.enqueue_dense:
        dense = space.dense_candidate()   # clamped into the space: space.sparsity.low > 0
        found.append(("dense" if not any(dense.sparsity.values()) else "least_sparse", dense))
    searched = space.searched_layers()
    for bits in config.search.baseline_bits:
        for sparsity in config.search.baseline_sparsities:
            for origin in config.search.baselines:
                # No searched layer (every one bounded or excluded): each rule keeps all dense.
                per_layer = ALLOCATIONS[origin](context.dense_state, searched, sparsity) \
                    if searched else {}
                candidate = space.candidate_for(per_layer, {n: bits for n in space.layer_names})
                if all(candidate != c for _, c in found):
                    found.append((origin, candidate))
    return found[: config.search.n_trials]


def enqueue_starting_points(study: optuna.Study, space: SearchSpace, context: EvalContext,
                            config: ExperimentConfig) -> None:
    """Enqueue the starting candidates once per study, even when a kill interrupts the loop.

    The study attr ``starting_enqueued`` is False while enqueueing and True after; a run that finds
    False enqueues again, skipping what is already there. ``starting_count`` records how many
    were enqueued: a first budget smaller than the list cuts it, and a resume with a larger
    budget enqueues the rest (first, before the sampler's trials).
    """
    resumed = bool(study.trials)
    attrs = study.user_attrs
    starting = starting_candidates(space, context, config)
    done = attrs.get("starting_enqueued")
    if resumed and done is not False and len(starting) <= attrs.get("starting_count", 1 << 30):
        return
    study.set_user_attr("starting_enqueued", False)
    for origin, candidate in starting:
        # A new study holds nothing to skip (Optuna would read every trial per enqueue to see).
        study.enqueue_trial(space.to_params(candidate), user_attrs={"origin": origin},
                            skip_if_exists=resumed)
    study.set_user_attr("starting_count", len(starting))
    study.set_user_attr("starting_enqueued", True)
