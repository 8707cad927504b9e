"""The default study: scikit-learn's digits (real 8x8 handwritten digits, shipped offline) and the
built-in CNN, searched for per-layer sparsity, pruning criterion and weight bits.

    python examples/digits_default.py          # the full default budget (about 60 trials)

Same as `sparsity-search run`. Results land in runs/digits/ (trials.csv, pareto.csv).
Set SPARSITY_SEARCH_SMOKE=1 for a seconds-long run (2 trials, 1 epoch): what CI does.
"""
import os

from search.api import run_search

smoke = {"threads": 1, "cost": {"measure_latency": False},
         "dense": {"epochs": 1}, "finetune": {"epochs": 1},
         "search": {"n_trials": 2, "baseline_sparsities": [0.5], "baseline_bits": [8]}}

result = run_search(study="digits", **(smoke if os.environ.get("SPARSITY_SEARCH_SMOKE") else {}))
print(result.front()[["trial", "accuracy", "test_accuracy", "flops", "energy_uj", "size_bytes"]])
