"""Screening: more candidates for the same fine-tune epochs?

Per seed, on one dense reference shared by both runs:

- ``before``: the search as it was before screening (rung 0 off): ``--trials`` trials with
  early stopping at rungs 1 and 2;
- ``screening``: rung 0 on, the budget in fine-tune epochs set to what ``before`` spent, and
  ``--cap`` x ``--trials`` candidates at most.

Reported per seed: hypervolume of (val accuracy, FLOPs, energy) as in ``search_quality.py``
(reference point fixed before the runs: accuracy 0.5, 1.1 x dense FLOPs and energy); the
fine-tune epochs ``screening`` needed to reach ``before``'s final hypervolume (target <= 1/3);
its hypervolume at ``before``'s epochs (target: higher); the smallest model (by FLOPs) whose
validation accuracy is within 1 point of the dense model's, with its compression (dense FLOPs /
its FLOPs) and its test accuracy drop (target: >= 1.5x smaller, median over seeds); the cost of a
candidate screened out at rung 0 as a share of one fine-tune epoch (target <= 5%); and how well
rung 0 predicts the final accuracy (Spearman rank correlation over ``screening``'s fine-tuned
trials, which passed the screen: a biased sample, stated as such).

    python benchmarks/screening.py                  # digits CNN, 60 trials, 5 seeds
    python benchmarks/screening.py --model mlp
    python benchmarks/screening.py --tiny           # smoke test
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pandas as pd
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from search.api import merge_options  # noqa: E402
from search.config import config_from_dict  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from search_quality import (base_config, front_hypervolume, hypervolume_by_epochs,  # noqa: E402
                            run_sharing_dense, smallest_within)

def run_pair(args: argparse.Namespace, seed: int, out: Path) -> tuple[dict, pd.DataFrame]:
    """``before`` then ``screening`` on one dense reference; their row and curves."""
    runs, curves, dense_file = {}, [], None
    for method in ("before", "screening"):
        base = merge_options(base_config(args, seed, out),
                             {"study": f"{args.model}-s{seed}-{method}"})
        if method == "before":
            change = {"search": {"early_stopping": {"screening": {"enabled": False}}}}
        else:
            spent = int(runs["before"][0]["finetune_epochs_done"].fillna(0).sum())
            change = {"search": {"budget_epochs": spent, "n_trials": args.cap * args.trials}}
            screening = {**({} if args.share is None else {"fine_tune_share": args.share}),
                         **({} if args.rung0_samples is None else
                            {"samples": None if args.rung0_samples == 0 else args.rung0_samples})}
            if screening:
                change["search"]["early_stopping"] = {"screening": screening}
        config = config_from_dict(merge_options(base, change))
        result, seconds, dense_file = run_sharing_dense(config, dense_file)
        trials, dense = result.trials(), result.dense_reference()
        runs[method] = (trials, dense, seconds)
        curve = hypervolume_by_epochs(trials, dense).assign(method=method, seed=seed)
        curves.append(curve)
        print(f"  {args.model} seed {seed} {method:9s} HV={front_hypervolume(trials, dense):.4f} "
              f"epochs={int(trials['finetune_epochs_done'].fillna(0).sum())} trials={len(trials)}"
              f" {seconds:.0f}s", flush=True)
    return compare(args.model, seed, runs, pd.concat(curves)), pd.concat(curves)


def compare(model: str, seed: int, runs: dict, curves: pd.DataFrame) -> dict:
    before, dense, _ = runs["before"]
    after, _, seconds = runs["screening"]
    before_curve = curves[curves["method"] == "before"]
    after_curve = curves[curves["method"] == "screening"]
    goal, goal_epochs = before_curve["hypervolume"].iloc[-1], before_curve["epochs"].iloc[-1]
    reached = after_curve[after_curve["hypervolume"] >= goal - 1e-12]
    at_equal = after_curve[after_curve["epochs"] <= goal_epochs]["hypervolume"].max()
    small_before, small_after = smallest_within(before, dense), smallest_within(after, dense)
    screened = after[(after["state"] == "PRUNED") & (after.get("pruned_rung") == 0)]
    tuned = after[(after["state"] == "COMPLETE") & after["rung0_accuracy"].notna()] \
        if "rung0_accuracy" in after else after.iloc[:0]
    epoch_s = (tuned["train_seconds"] / tuned["finetune_epochs_done"].clip(lower=1)).median()
    return {
        "model": model, "seed": seed,
        "hv_before": goal, "epochs_before": int(goal_epochs),
        "hv_screening": front_hypervolume(after, dense),
        "epochs_screening": int(after["finetune_epochs_done"].fillna(0).sum()),
        "hv_at_equal_epochs": float(at_equal),
        "epochs_to_reach_before": int(reached["epochs"].iloc[0]) if len(reached) else None,
        "share_of_epochs": (reached["epochs"].iloc[0] / goal_epochs) if len(reached) else None,
        "candidates": len(after), "screened": len(screened), "trials_before": len(before),
        "compression_before": small_before[0], "test_drop_before": small_before[1],
        "compression_screening": small_after[0], "test_drop_screening": small_after[1],
        "rung0_s": float(screened["eval_seconds"].median()) if len(screened) else float("nan"),
        "epoch_s": float(epoch_s) if len(tuned) else float("nan"),
        "rho_rung0_acc": rank(tuned, "rung0_accuracy", 1.0),
        "rho_rung0_kl": rank(tuned, "rung0_kl", -1.0),
        "seconds": round(seconds, 1),
    }


def rank(trials: pd.DataFrame, column: str, sign: float) -> float:
    if column not in trials or len(trials) < 3:
        return float("nan")
    return float(spearmanr(sign * trials[column], trials["accuracy"]).statistic)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="cnn", choices=["cnn", "mlp"])
    parser.add_argument("--trials", type=int, default=60, help="trials of the 'before' run")
    parser.add_argument("--cap", type=int, default=10,
                        help="screening may look at cap x trials candidates")
    parser.add_argument("--epochs", type=int, default=4, help="fine-tune epochs per trial")
    parser.add_argument("--share", type=float,
                        help="screening.fine_tune_share of the screening run (default: the config's)")
    parser.add_argument("--rung0-samples", type=int,
                        help="screening.samples of the screening run (0: the whole validation "
                             "split; default: the config's)")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", default="benchmarks/results/screening")
    parser.add_argument("--tiny", action="store_true", help="smoke test: synthetic data")
    args = parser.parse_args(argv)
    if args.tiny:
        args.trials, args.seeds, args.epochs, args.cap = 8, 1, 2, 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows, curves = [], []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        row, curve = run_pair(args, seed, out)
        rows.append(row)
        curves.append(curve)
    table = pd.DataFrame(rows)
    table.to_csv(out / f"screening-{args.model}.csv", index=False)
    pd.concat(curves).to_csv(out / f"screening-curves-{args.model}.csv", index=False)
    pd.set_option("display.width", 250)
    print(f"\nload average {os.getloadavg()[0]:.2f}; {args.model}, 'before' = {args.trials} "
          f"trials x {args.epochs} fine-tune epochs, early stopping at rungs 1/2; 'screening' = "
          f"rung 0 on, the same fine-tune epochs as a budget:\n" + table.to_string(index=False))
    share = table["rung0_s"] / table["epoch_s"]
    print(f"\nmedian over seeds: epochs to reach before's HV {table['share_of_epochs'].median():.2f}"
          f" of before's (target <= 0.33); HV at equal epochs higher in "
          f"{int((table['hv_at_equal_epochs'] > table['hv_before']).sum())}/{len(table)} seeds; "
          f"compression within 1 point {table['compression_screening'].median():.1f}x vs "
          f"{table['compression_before'].median():.1f}x; a screened-out candidate costs "
          f"{100 * share.median():.1f}% of a fine-tune epoch (target <= 5%); rank correlation "
          f"with the final accuracy: rung-0 accuracy {table['rho_rung0_acc'].median():.2f}, "
          f"-KL {table['rho_rung0_kl'].median():.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
