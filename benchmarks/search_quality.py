"""Search quality: does the default search beat what a user would do by hand, at equal budget?

Every method gets the same number of trials and the same fine-tune epochs per trial, on the same
dense reference (trained once per seed and shared), for several seeds:

- default        what `sparsity-search run` does: TPE over the shaped space (log-density sparsity,
                 hand-made baselines first, duplicates reused) with rung-0 screening and
                 multi-objective early stopping (rungs after 1 and 2 epochs)
- default-es     the same without early stopping (and so without screening)
- default+fixed_margin  early stopping with the fixed margin only (no bound learned from
                 finished trials)
- default+keptK  default with each layer bounded by keeping K weights per output unit
                 (space.min_kept_per_output) instead of sparsity.high 0.99
- default+sensD  default-es with per-layer bounds from the sensitivity analysis for an accuracy
                 drop D (e.g. default+sens0.02; not in the default list: pass --methods)
- global_offsetR default-es with one global sparsity + per-layer offsets within R
                 (space.parametrization; global_offset = the default max_offset)
- nsga2          the shaped space of default-es with the NSGA-II sampler
- evo            the shaped space of default-es with the evolutionary sampler (search.sampler: evo;
                 not in the default list: pass --methods)
- random         random search over the same space, no baselines
- plain_nsga2    NSGA-II over a flat space (sparsity uniform on a 0.05 grid in [0, 0.95]),
                 no baselines: a search that only hands a space to a sampler
- uniform_sweep  the same sparsity in every layer, 0.1 ... 0.95, magnitude, at 8 and 32 bits
- global_sweep   one global magnitude threshold at the same sizes and bits
- lamp_sweep     LAMP's per-layer allocation (Lee et al., ICLR 2021) at the same sizes and bits
- erk_sweep      ERK's per-layer allocation (RigL) at the same sizes and bits

Every method but ``default`` (and its ``default+`` variants) runs without early stopping, so spaces and samplers compare at equal
trials and epochs; ``default`` against ``default-es`` shows what early stopping saves.

Hypervolume of (validation accuracy, FLOPs, energy), normalised: FLOPs and energy divided by the
dense reference's; reference point accuracy 0.5, FLOPs 1.1 x dense, energy 1.1 x dense (a model
below 50% accuracy or costlier than 1.1 x dense adds nothing). Prints a table and writes CSVs.

    python benchmarks/search_quality.py                 # digits + built-in CNN, 60 trials, 3 seeds
    python benchmarks/search_quality.py --model mlp     # the second model
    python benchmarks/search_quality.py --tiny          # smoke test (seconds)
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from search.api import merge_options, run_search  # noqa: E402
from search.config import BASELINES, config_from_dict  # noqa: E402
from search.pareto import dominates  # noqa: E402
from search.decide.hypervolume import hypervolume, normalised_losses  # noqa: E402

METRICS = ["accuracy", "flops", "energy_uj"]
DIRECTIONS = ["maximize", "minimize", "minimize"]
ACCURACY_FLOOR = 0.5


SENSITIVITY = "default+sens"
GLOBAL_OFFSET = "global_offset"
KEPT = "default+kept"


def method_overrides(name: str, n_trials: int) -> dict:
    """Config changes (on top of the common base) that make each method."""
    if name == "default":
        return {}
    if name == "default+fixed_margin":    # early stopping without the learned bound
        return {"search": {"early_stopping": {"learned_bound": False}}}
    if name.startswith(KEPT):            # e.g. default+kept2: bounds from 2 weights per output
        return {"space": {"min_kept_per_output": float(name[len(KEPT):] or 2)}}
    no_stopping = {"search": {"early_stopping": {"enabled": False}}}
    return merge_options(_method(name, n_trials), no_stopping)


def _method(name: str, n_trials: int) -> dict:
    if name.startswith(SENSITIVITY):    # e.g. default+sens0.05: bounds for a 0.05 accuracy drop
        drop = float(name[len(SENSITIVITY):] or 0.02)
        return {"space": {"sensitivity_max_drop": drop}}
    if name.startswith(GLOBAL_OFFSET):  # e.g. global_offset1.0: offsets up to one decade
        reach = name[len(GLOBAL_OFFSET):]
        return {"space": {"parametrization": "global_offset",
                          **({"max_offset": float(reach)} if reach else {})}}
    sweep = [round(v, 2) for v in np.linspace(0.1, 0.95, max(1, (n_trials - 1) // 2))]
    linear = {"sparsity": {"scale": "linear", "high": 0.95, "step": 0.01}}
    no_baselines = {"baseline_sparsities": []}
    return {
        "default-es": {},
        "nsga2": {"search": {"sampler": "nsga2"}},
        "evo": {"search": {"sampler": "evo"}},
        "random": {"search": {"sampler": "random", **no_baselines}},
        "plain_nsga2": {"space": {"sparsity": {"scale": "linear", "high": 0.95, "step": 0.05}},
                        "search": no_baselines},
        "uniform_sweep": {"space": linear, "search": {
            "baselines": ["uniform"], "baseline_sparsities": sweep, "baseline_bits": [8, 32]}},
        **{f"{rule}_sweep": {"space": linear, "search": {
            "baselines": [origin], "baseline_sparsities": sweep, "baseline_bits": [8, 32]}}
           for rule, origin in (("global", "global_magnitude"), ("lamp", "lamp"), ("erk", "erk"))},
    }[name]


def front_hypervolume(trials: pd.DataFrame, dense: dict) -> float:
    done = trials[trials["state"] == "COMPLETE"].dropna(subset=METRICS)
    if done.empty:
        return 0.0
    losses, reference = normalised_losses(done, METRICS, DIRECTIONS, dense)
    reference[0] = -ACCURACY_FLOOR
    return hypervolume(losses, reference)


def hypervolume_by_epochs(trials: pd.DataFrame, dense: dict) -> pd.DataFrame:
    """Hypervolume after each trial against cumulative fine-tune epochs spent."""
    ordered = trials.sort_values("trial")
    epochs = ordered["finetune_epochs_done"].fillna(0).cumsum().to_numpy()
    values = [front_hypervolume(ordered.iloc[: i + 1], dense) for i in range(len(ordered))]
    return pd.DataFrame({"epochs": epochs, "hypervolume": values})


def covers_sweep(trials: pd.DataFrame, sweep: pd.DataFrame) -> tuple[int, int]:
    """How many uniform-sweep points have a trial at least as accurate with no more FLOPs."""
    done = trials[trials["state"] == "COMPLETE"]
    hits = sum(bool(((done["flops"] <= row.flops * (1 + 1e-9)) &
                     (done["accuracy"] >= row.accuracy)).any())
               for row in sweep.itertuples())
    return hits, len(sweep)


def baseline_fates(trials: pd.DataFrame) -> str:
    """What became of the enqueued hand-made baselines: 'F/S/B of N' = on the front / dominated by
    a searched (sampler) trial / dominated only by other baselines or the dense reference."""
    done = trials[trials["state"] == "COMPLETE"].dropna(subset=METRICS)
    if "origin" not in done:
        return ""
    baselines = done[done["origin"].isin(BASELINES)]
    searched = done[done["origin"] == "sampler"]

    def dominated_by(points: pd.DataFrame, point) -> bool:
        return any(dominates(other, point, DIRECTIONS) for other in points[METRICS].to_numpy())

    front = by_searched = 0
    for point in baselines[METRICS].to_numpy():
        if not dominated_by(done, point):
            front += 1
        elif dominated_by(searched, point):
            by_searched += 1
    rest = len(baselines) - front - by_searched
    return f"{front}/{by_searched}/{rest} of {len(baselines)}"


def base_config(args: argparse.Namespace, seed: int, out: Path) -> dict:
    # One torch thread per run: small models gain nothing from a second one, and on a busy machine
    # two spinning OpenMP threads per process slow training by up to 9x (measured here).
    config = {"output_dir": str(out), "seed": seed, "model": {"name": args.model}, "threads": 1,
              "search": {"n_trials": args.trials}, "finetune": {"epochs": args.epochs}}
    if args.tiny:
        config.update({"data": {"name": "synthetic", "options": {"samples": 240, "classes": 4}},
                       "model": {"name": args.model, "options": {"width": 4}
                                 if args.model == "cnn" else {"hidden": [16]}},
                       "dense": {"epochs": 3, "lr": 0.005}})
    return config


def run_sharing_dense(config, dense_file: Path | None) -> tuple[object, float, Path]:
    """Run one study on ``dense_file``'s dense reference (None: train it, and return its file):
    one dense reference per seed, shared by the methods. (result, seconds, dense file)."""
    if dense_file is not None:
        config.study_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy(dense_file, config.study_dir / "dense.pt")
    started = time.perf_counter()
    result = run_search(config, log=lambda _: None)
    return result, time.perf_counter() - started, dense_file or config.study_dir / "dense.pt"


def run(args: argparse.Namespace) -> pd.DataFrame:
    out = Path(args.out)
    rows, curves = [], []
    for seed in range(args.seeds):
        dense_file = None
        sweep_trials = None
        for method in args.methods:
            study = f"{args.model}-s{seed}-{method}"
            base = merge_options(base_config(args, seed, out), {"study": study})
            config = config_from_dict(merge_options(base, method_overrides(method, args.trials)))
            result, seconds, dense_file = run_sharing_dense(config, dense_file)
            trials = result.trials()
            dense = result.dense_reference()
            if method == "uniform_sweep":
                sweep_trials = trials[(trials["state"] == "COMPLETE") &
                                      (trials.get("origin") == "uniform")]
            states = trials["state"].value_counts()
            row = {
                "model": args.model, "seed": seed, "method": method,
                "hypervolume": front_hypervolume(trials, dense),
                "trials": len(trials), "complete": int(states.get("COMPLETE", 0)),
                "stopped_early": int(states.get("PRUNED", 0)),
                "duplicates": int(trials["duplicate_of"].notna().sum())
                if "duplicate_of" in trials else 0,
                "finetune_epochs": int(trials["finetune_epochs_done"].fillna(0).sum()),
                "front_size": len(result.front()), "seconds": round(seconds, 1),
                "best_acc_under_20pct_flops": best_accuracy_under(trials, dense, 0.2),
                "baselines_front/searched/other": baseline_fates(trials),
            }
            rows.append(row)
            curve = hypervolume_by_epochs(trials, dense)
            curve["method"], curve["seed"] = method, seed
            curves.append(curve)
            result.front().assign(method=method, seed=seed).to_csv(
                out / f"front-{study}.csv", index=False)
            print(f"  seed {seed} {method:14s} HV={row['hypervolume']:.4f} "
                  f"epochs={row['finetune_epochs']} {seconds:.0f}s", flush=True)
        if sweep_trials is not None and "default" in args.methods:
            default = pd.read_csv(out / f"{args.model}-s{seed}-default" / "trials.csv")
            hits, total = covers_sweep(default, sweep_trials)
            for row in rows:
                if row["seed"] == seed and row["method"] == "default":
                    row["sweep_points_matched"] = f"{hits}/{total}"
    table = pd.DataFrame(rows)
    table.to_csv(out / "search_quality.csv", index=False)
    pd.concat(curves).to_csv(out / "search_quality_curves.csv", index=False)
    return table, pd.concat(curves)


def best_accuracy_under(trials: pd.DataFrame, dense: dict, fraction: float) -> float:
    done = trials[(trials["state"] == "COMPLETE") & (trials["flops"] <= fraction * dense["flops"])]
    return float(done["accuracy"].max()) if len(done) else float("nan")


def epochs_to_reach(curves: pd.DataFrame, method: str, target_method: str) -> pd.DataFrame:
    """Per seed: fine-tune epochs ``method`` needed to reach ``target_method``'s final HV."""
    rows = []
    for seed, group in curves.groupby("seed"):
        target = group[group["method"] == target_method]
        mine = group[group["method"] == method]
        if target.empty or mine.empty:
            continue
        goal = target["hypervolume"].iloc[-1]
        reached = mine[mine["hypervolume"] >= goal - 1e-12]
        rows.append({"seed": seed, "target_hv": goal,
                     "target_epochs": int(target["epochs"].iloc[-1]),
                     "epochs_needed": int(reached["epochs"].iloc[0]) if len(reached) else None})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="cnn", choices=["cnn", "mlp"])
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--epochs", type=int, default=4, help="fine-tune epochs per trial")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--methods", nargs="+", default=["uniform_sweep", "global_sweep",
                        "lamp_sweep", "erk_sweep",
                        "default", "default-es", "nsga2", "random", "plain_nsga2"])
    parser.add_argument("--out", default="benchmarks/results/search_quality")
    parser.add_argument("--tiny", action="store_true", help="smoke test: synthetic data, 6 trials")
    args = parser.parse_args(argv)
    if args.tiny:
        args.trials, args.seeds, args.epochs = 6, 1, 2
    Path(args.out).mkdir(parents=True, exist_ok=True)
    table, curves = run(args)
    summary = (table.groupby("method")[["hypervolume", "finetune_epochs", "seconds"]]
               .median().sort_values("hypervolume", ascending=False))
    pd.set_option("display.width", 200)
    print("\nPer run:\n" + table.to_string(index=False))
    print(f"load average {os.getloadavg()[0]:.2f} (1 min) after the runs")
    print(f"\nMedian over {args.seeds} seed(s) ({args.model}, {args.trials} trials, "
          f"{args.epochs} fine-tune epochs each; HV reference: accuracy {ACCURACY_FLOOR}, "
          f"1.1 x dense FLOPs and energy):\n" + summary.to_string())
    if {"default", "plain_nsga2"} <= set(args.methods):
        reach = epochs_to_reach(curves, "default", "plain_nsga2")
        print("\nFine-tune epochs default needed to reach plain_nsga2's final hypervolume:\n"
              + reach.to_string(index=False))
        reach.to_csv(Path(args.out) / "early_stopping_reach.csv", index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
