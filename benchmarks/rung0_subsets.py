"""Rung 0 on calibration subsets: how much of its ranking survives, and what it costs.

Runs the default study of a task (or reads it, when the output folder has it), then measures rung
0 again for every fine-tuned trial on the whole validation split and on fixed random subsets of
it (``search.early_stopping.screening.samples``): the rank correlation (Spearman) of each rung-0
figure with the trial's final validation accuracy, and the median seconds of rung 0, in one run.

    python benchmarks/rung0_subsets.py                      # digits, built-in CNN
    python benchmarks/rung0_subsets.py --model mlp
    python benchmarks/rung0_subsets.py --model vit          # examples/vit_digits.yaml
    python benchmarks/rung0_subsets.py --tiny               # smoke test
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
import torch
from optuna.trial import TrialState
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from search.api import run_search  # noqa: E402
from search.config import config_from_dict  # noqa: E402
from search.run.context import build_study_context  # noqa: E402
from spaces.candidate import Candidate  # noqa: E402
from trainers.method_parts import prepare_candidate  # noqa: E402
from trainers.rung0 import measure_rung0  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from search_quality import base_config  # noqa: E402
from table_output import save_and_print  # noqa: E402


def fine_tuned(result) -> list:
    """The study's fine-tuned trials that have rung-0 figures (what the screening map fits)."""
    return [t for t in result.study.get_trials(deepcopy=False)
            if t.state == TrialState.COMPLETE and "rung0_accuracy" in t.user_attrs
            and "duplicate_of" not in t.user_attrs]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="cnn", choices=["cnn", "mlp", "vit"])
    parser.add_argument("--samples", type=int, nargs="+", default=[64, 128, 192],
                        help="subset sizes (the whole split is always measured too)")
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--epochs", type=int, default=4, help="fine-tune epochs per trial")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="timed passes of rung 0 per size")
    parser.add_argument("--out", default="benchmarks/results/rung0_subsets")
    parser.add_argument("--tiny", action="store_true", help="smoke test: synthetic data")
    args = parser.parse_args(argv)
    if args.tiny:
        args.trials, args.epochs, args.samples, args.repeats = 6, 1, [20], 1
    out = Path(args.out)
    config = config_from_dict({**base_config(args, args.seed, out),
                               "study": f"rung0-{args.model}-s{args.seed}"})
    torch.set_num_threads(1)
    result = run_search(config, log=lambda _: None)
    trials = fine_tuned(result)
    context, _ = build_study_context(config, log=lambda _: None)
    screening = config.search.early_stopping.screening
    accuracy = config.search.objectives.metrics.index("accuracy")
    sizes = [None, *sorted(set(args.samples))]
    rows = []
    for trial in trials:
        candidate = Candidate.from_flat_dict(trial.user_attrs["candidate"])
        model = prepare_candidate(candidate, context).model
        for size in sizes:
            runs = [measure_rung0(model, context, candidate.seed, screening.bn_batches, size)
                    for _ in range(1 + args.repeats)][1:]   # the first pass warms the caches
            rows.append({"trial": trial.number, "samples": size or len(context.data.val),
                         "final": float(trial.values[accuracy]), "accuracy": runs[0].accuracy,
                         "kl": runs[0].kl, "seconds": min(r.seconds for r in runs)})
    figures = pd.DataFrame(rows)
    table = pd.DataFrame([{
        "samples": samples, "trials": len(group),
        "spearman_rung0_accuracy": spearmanr(group["accuracy"], group["final"]).statistic,
        "spearman_minus_kl": spearmanr(-group["kl"], group["final"]).statistic,
        "rung0_ms_median": 1000 * group["seconds"].median(),
    } for samples, group in figures.groupby("samples")]).sort_values("samples")
    print(f"{args.model}, seed {args.seed}: {len(trials)} fine-tuned trials of the default study "
          f"({args.trials} trials), validation split {len(context.data.val)} samples; rank "
          f"correlation of each rung-0 figure with the final validation accuracy:")
    save_and_print(table, out / f"rung0_subsets_{args.model}.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
