"""Search quality: does the default search beat what a user would do by hand, at equal budget?

Per seed, one dense reference (trained once and shared by the methods). The default runs first;
every other method then gets the fine-tune epochs the default spent (``search.budget_epochs``; a
sweep gets as many sizes as those epochs afford), so all methods are compared at equal fine-tune
epochs. ``--equal-trials`` gives every method ``--trials`` trials instead (the old protocol).

Tasks (``--model``): digits with the built-in CNN (``cnn``) or MLP (``mlp``), and ``vit``: the
tiny vision transformer of ``examples/vit_digits.yaml`` on digits (its space: magnitude and wanda,
unstructured and channel/head pruning, 4/8/32 bits).

Methods (``--methods``; the default list is marked *):

- default*       what `sparsity-search run` does: TPE over the shaped space (log-density sparsity,
                 hand-made baselines first, duplicates reused) with rung-0 screening,
                 multi-objective early stopping (rungs after 1 and 2 epochs) and refinement at
                 1 point below dense
- nsga2*, random*, gp*, evo*   the shaped space of default-es with another sampler: NSGA-II,
                 random (no baselines), Optuna's GPSampler (logEHVI), the evolutionary sampler
                 (no refinement either)
- uniform_sweep* the same sparsity in every layer, 0.1 ... 0.95, magnitude, at 8 and 32 bits
- global_sweep*  one global magnitude threshold at the same sizes and bits
- lamp_sweep*    LAMP's per-layer allocation (Lee et al., ICLR 2021) at the same sizes and bits
- erk_sweep*     ERK's per-layer allocation (RigL) at the same sizes and bits
- default-es     the default without early stopping (and so without screening)
- default+fixed_margin  early stopping with the fixed margin only (no learned bound)
- default+keptK  default with each layer bounded by keeping K weights per output unit
- default+bl:A,B default with the hand-made baselines A and B enqueued first (search.baselines,
                 e.g. default+bl:uniform,erk)
- default+bits:B default with the baselines enqueued at bit-widths B (search.baseline_bits,
                 e.g. default+bits:8)
- default+sp:S   default with the baselines enqueued at sparsities S (search.baseline_sparsities)
- default+refine:L@E  default with search.refine at levels L every E trials (refine:none: off)
- default+noscreen  default without rung-0 screening (early stopping at rungs 1 and 2 only)
- default+rung0:N  default with rung 0 on N validation samples (screening.samples; all: the split)
- default+A+B    changes A and B together, e.g. default+bits:8+refine:0.01@5
- default+sensD  default-es with per-layer bounds from the sensitivity analysis for a drop D
- global_offsetR default-es with one global sparsity + per-layer offsets within R
- plain_nsga2    NSGA-II over a flat space (sparsity uniform on a 0.05 grid in [0, 0.95]),
                 no baselines: a search that only hands a space to a sampler

Every method but ``default`` (and its ``default+`` variants) runs without early stopping (and the
samplers without refinement).

Figures per run: hypervolume of (validation accuracy, FLOPs, energy), normalised: FLOPs and energy
divided by the dense reference's; reference point fixed before the runs: accuracy 0.5, FLOPs
1.1 x dense, energy 1.1 x dense (a model below 50% accuracy or costlier than 1.1 x dense adds
nothing). IGD+ of the method's front against the union front of all methods of the seed (same
normalisation, points at or above accuracy 0.5; lower is better). The smallest model within 1
point of the dense validation accuracy (selected on validation): its compression (dense FLOPs /
its FLOPs) and its test-accuracy drop. Hypervolume after every trial against fine-tune epochs
spent: a CSV and a PNG of the medians over seeds.

    python benchmarks/search_quality.py                 # digits + built-in CNN, 5 seeds
    python benchmarks/search_quality.py --model mlp     # the second model
    python benchmarks/search_quality.py --model vit     # the third task
    python benchmarks/search_quality.py --config my_task.yaml --accuracy-floor 0.3   # yours
    python benchmarks/search_quality.py --tiny          # smoke test (seconds)
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from search.api import merge_options, run_search  # noqa: E402
from search.config import BASELINES, config_from_dict  # noqa: E402
from search.pareto import MINIMIZE, dominates, pareto_front  # noqa: E402
from search.decide.hypervolume import hypervolume, normalised_losses  # noqa: E402
from spaces.settings import SpaceSettings  # noqa: E402
from trainers.yaml_file import safe_load  # noqa: E402

METRICS = ["accuracy", "flops", "energy_uj"]
DIRECTIONS = ["maximize", "minimize", "minimize"]
ACCURACY_FLOOR = 0.5
WITHIN = 0.01   # "within 1 point of the dense accuracy"
REPO = Path(__file__).resolve().parents[1]
TASK_CONFIGS = {"vit": "examples/vit_digits.yaml"}   # tasks beyond the built-in CNN and MLP
SWEEP_BITS = (8, 32)   # the hand-made sweeps' bit-widths (those of them a task's space has)


SENSITIVITY = "default+sens"
GLOBAL_OFFSET = "global_offset"
# Changes to the default that combine: default+bits:8+refine:0.01@5 applies both.
VARIANTS = {
    "fixed_margin": lambda _: {"search": {"early_stopping": {"learned_bound": False}}},
    "bl:": lambda rest: {"search": {"baselines": [b for b in rest.split(",") if b]}},
    "bits:": lambda rest: {"search": {"baseline_bits": [int(b) for b in rest.split(",") if b]}},
    "sp:": lambda rest: {"search": {"baseline_sparsities": [float(v) for v in rest.split(",")
                                                            if v]}},
    "refine:": lambda rest: _refine(rest),
    "kept": lambda rest: {"space": {"min_kept_per_output": float(rest or 2)}},
    "noscreen": lambda _: {"search": {"early_stopping": {"screening": {"enabled": False}}}},
    "share:": lambda rest: {"search": {"early_stopping": {"screening": {
        "fine_tune_share": float(rest)}}}},
    "rung0:": lambda rest: {"search": {"early_stopping": {"screening": {
        "samples": None if rest == "all" else int(rest)}}}},
}


def _refine(spec: str) -> dict:
    """refine:0.01,0.02@4 = levels @ every; refine:none turns it off."""
    levels, _, every = spec.partition("@")
    within = [] if levels == "none" else [float(v) for v in levels.split(",") if v]
    return {"search": {"refine": {"within": within, **({"every": int(every)} if every else {})}}}


def method_overrides(name: str, n_trials: int, bits: tuple[int, ...] = SWEEP_BITS) -> dict:
    """Config changes (on top of the common base) that make each method (``bits``: the sweeps'
    bit-widths, ``sweep_bits`` of the task's space)."""
    if name == "default":
        return {}
    if name.startswith("default+") and not name.startswith(SENSITIVITY):
        change: dict = {}
        for part in name[len("default+"):].split("+"):
            prefix = next((p for p in VARIANTS if part.startswith(p)), None)
            if prefix is None:
                raise SystemExit(f"unknown change to the default '{part}' in method '{name}' "
                                 f"(known: {', '.join(VARIANTS)})")
            change = merge_options(change, VARIANTS[prefix](part[len(prefix):]))
        return change
    no_stopping = {"search": {"early_stopping": {"enabled": False}}}
    return merge_options(_method(name, n_trials, bits), no_stopping)


def sweep_bits(space_bits: Sequence[int] | None) -> tuple[int, ...]:
    """The sweeps' bit-widths: 8 and 32 where the task's space has them, else its widest."""
    allowed = tuple(space_bits) if space_bits else SpaceSettings().bits
    return tuple(b for b in SWEEP_BITS if b in allowed) or (max(allowed),)


def sweep_sizes(n_trials: int, bits: Sequence[int]) -> list[float]:
    """The sparsities a sweep of ``n_trials`` trials (the dense one, then sizes x ``bits``) runs."""
    return [round(v, 2) for v in np.linspace(0.1, 0.95, max(1, (n_trials - 1) // len(bits)))]


def _method(name: str, n_trials: int, bits: tuple[int, ...] = SWEEP_BITS) -> dict:
    if name.startswith(SENSITIVITY):    # e.g. default+sens0.05: bounds for a 0.05 accuracy drop
        drop = float(name[len(SENSITIVITY):] or 0.02)
        return {"space": {"sensitivity_max_drop": drop}}
    if name.startswith(GLOBAL_OFFSET):  # e.g. global_offset1.0: offsets up to one decade
        reach = name[len(GLOBAL_OFFSET):]
        return {"space": {"parametrization": "global_offset",
                          **({"max_offset": float(reach)} if reach else {})}}
    sweep = sweep_sizes(n_trials, bits)
    linear = {"sparsity": {"scale": "linear", "high": 0.95, "step": 0.01}}
    no_baselines = {"baseline_sparsities": []}
    no_refine = {"refine": {"within": []}}    # the samplers alone (like early stopping: off)
    return {
        "default-es": {},
        "nsga2": {"search": {"sampler": "nsga2", **no_refine}},
        "evo": {"search": {"sampler": "evo", **no_refine}},
        "gp": {"search": {"sampler": "gp", **no_refine}},
        "random": {"search": {"sampler": "random", **no_refine, **no_baselines}},
        "plain_nsga2": {"space": {"sparsity": {"scale": "linear", "high": 0.95, "step": 0.05}},
                        "search": no_baselines},
        "uniform_sweep": {"space": linear, "search": {
            "baselines": ["uniform"], "baseline_sparsities": sweep, "baseline_bits": list(bits)}},
        **{f"{rule}_sweep": {"space": linear, "search": {
            "baselines": [origin], "baseline_sparsities": sweep, "baseline_bits": list(bits)}}
           for rule, origin in (("global", "global_magnitude"), ("lamp", "lamp"), ("erk", "erk"))},
    }[name]


def front_hypervolume(trials: pd.DataFrame, dense: dict, floor: float = ACCURACY_FLOOR) -> float:
    done = trials[trials["state"] == "COMPLETE"].dropna(subset=METRICS)
    if done.empty:
        return 0.0
    losses, reference = normalised_losses(done, METRICS, DIRECTIONS, dense)
    reference[0] = -floor
    return hypervolume(losses, reference)


def hypervolume_by_epochs(trials: pd.DataFrame, dense: dict,
                          floor: float = ACCURACY_FLOOR) -> pd.DataFrame:
    """Hypervolume after each trial against cumulative fine-tune epochs spent."""
    ordered = trials.sort_values("trial")
    epochs = ordered["finetune_epochs_done"].fillna(0).cumsum().to_numpy()
    values = [front_hypervolume(ordered.iloc[: i + 1], dense, floor) for i in range(len(ordered))]
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


NOTED: set[str] = set()   # task files whose left-out keys were printed


def protocol_keys(task: dict) -> list[str]:
    """Remove from ``task`` what the protocol decides (its ``search:`` section: what makes each
    method, the budget, the storage; ``space.finetune_epochs``: equal epochs per trial); return
    their names. A task's sampler or baselines would otherwise change what "default" means."""
    gone = [f"search.{key}" for key in (task.pop("search", None) or {})]
    space = task.get("space") or {}
    if isinstance(space, dict) and "finetune_epochs" in space:
        space.pop("finetune_epochs")
        gone.append("space.finetune_epochs")
    return gone


def base_config(args: argparse.Namespace, seed: int, out: Path) -> dict:
    # One torch thread per run: small models gain nothing from a second one, and on a busy machine
    # two spinning OpenMP threads per process slow training by up to 9x (measured here).
    config = {"output_dir": str(out), "seed": seed, "model": {"name": args.model}, "threads": 1,
              "search": {"n_trials": args.trials}, "finetune": {"epochs": args.epochs}}
    task_file = getattr(args, "config", None) or (
        REPO / TASK_CONFIGS[args.model] if args.model in TASK_CONFIGS else None)
    if task_file is not None:   # a task with its own model, data and space (an example, a user's)
        task = safe_load(Path(task_file).read_text()) or {}
        if not isinstance(task, dict):
            raise SystemExit(f"--config {task_file}: a study config must be a mapping of "
                             f"sections (model, data, space, ...); got {type(task).__name__}")
        for key in ("study", "output_dir", "seed", "threads"):   # the benchmark sets these
            task.pop(key, None)
        (task.get("finetune") or {}).pop("epochs", None)   # the protocol's budget
        left_out = protocol_keys(task)
        if left_out and str(task_file) not in NOTED:
            NOTED.add(str(task_file))
            print(f"--config {task_file}: the protocol sets the search itself (each method's "
                  f"sampler, baselines, stopping, budget) and the fine-tune epochs; the file's "
                  f"{', '.join(left_out)} are left out", flush=True)
        config = merge_options(task, config)
        if "model" in task:
            config["model"] = task["model"]
    if args.tiny and task_file is None:
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


def equal_epochs_overrides(method: str, epochs_budget: int, args: argparse.Namespace,
                           bits: tuple[int, ...] = SWEEP_BITS) -> dict:
    """What makes ``method`` spend the fine-tune epochs the default spent: a budget in epochs for
    the samplers; for a sweep, as many sizes (x its bit-widths, + the dense trial) as it affords,
    and no more trials than it enqueues (a trial left over was the sampler's own draw)."""
    per_trial = max(1, args.epochs)
    if method.endswith("_sweep"):
        affordable = max(1 + len(bits), epochs_budget // per_trial)
        enqueued = 1 + len(sweep_sizes(affordable, bits)) * len(bits)
        return merge_options(_method(method, affordable, bits),
                             {"search": {"n_trials": enqueued, "budget_epochs": epochs_budget}})
    return {"search": {"budget_epochs": epochs_budget, "n_trials": 20 * args.trials}}


def ordered_methods(args: argparse.Namespace) -> list[str]:
    """The default first when the others get its epochs (they need to know how many)."""
    if args.equal_trials or "default" not in args.methods:
        return list(args.methods)
    return ["default"] + [m for m in args.methods if m != "default"]


def run(args: argparse.Namespace) -> tuple[pd.DataFrame, pd.DataFrame]:
    out = Path(args.out)
    rows, curves = [], []
    earlier = None
    if args.epochs_from:    # every method gets the epochs an earlier table's default spent
        earlier = pd.read_csv(args.epochs_from).set_index(["seed", "method"])
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        dense_file = None
        sweep_trials = None
        spent = None
        seed_trials: dict[str, tuple[pd.DataFrame, dict]] = {}
        for method in ordered_methods(args):
            study = f"{args.task}-s{seed}-{method}"
            base = merge_options(base_config(args, seed, out), {"study": study})
            bits = sweep_bits((base.get("space") or {}).get("bits"))
            change = method_overrides(method, args.trials, bits)
            if earlier is not None and (seed, "default") in earlier.index:   # --epochs-from
                budget = int(earlier.loc[(seed, "default"), "finetune_epochs"])
                change = merge_options(change, equal_epochs_overrides(method, budget, args, bits))
            elif spent is not None and not method.startswith("default"):
                change = merge_options(change, equal_epochs_overrides(method, spent, args, bits))
            config = config_from_dict(merge_options(base, change))
            result, seconds, dense_file = run_sharing_dense(config, dense_file)
            trials = result.trials()
            dense = result.dense_reference()
            if not seed_trials and dense.get("accuracy", 1.0) <= args.accuracy_floor:
                print(f"  warning: the dense val accuracy {dense['accuracy']:.4f} is at or below "
                      f"--accuracy-floor {args.accuracy_floor:g}: every hypervolume is 0; set "
                      f"the floor below it (fixed before the runs)", flush=True)
            seed_trials[method] = (trials, dense)
            if method == "default" and not args.equal_trials:
                spent = int(trials["finetune_epochs_done"].fillna(0).sum())
            if method == "uniform_sweep":
                sweep_trials = trials[(trials["state"] == "COMPLETE") &
                                      (trials.get("origin") == "uniform")]
            states = trials["state"].value_counts()
            compression, test_drop = smallest_within(trials, dense)
            row = {
                "model": args.task, "seed": seed, "method": method,
                "hypervolume": front_hypervolume(trials, dense, args.accuracy_floor),
                "trials": len(trials), "complete": int(states.get("COMPLETE", 0)),
                "stopped_early": int(states.get("PRUNED", 0)),
                "duplicates": int(trials["duplicate_of"].notna().sum())
                if "duplicate_of" in trials else 0,
                "finetune_epochs": int(trials["finetune_epochs_done"].fillna(0).sum()),
                "compression_1pt": compression, "test_drop_1pt": round(test_drop, 2),
                "front_size": len(result.front()), "seconds": round(seconds, 1),
                "best_acc_under_20pct_flops": best_accuracy_under(trials, dense, 0.2),
                "baselines_front/searched/other": baseline_fates(trials),
            }
            rows.append(row)
            curve = hypervolume_by_epochs(trials, dense, args.accuracy_floor)
            curve["method"], curve["seed"] = method, seed
            curves.append(curve)
            result.front().assign(method=method, seed=seed).to_csv(
                out / f"front-{study}.csv", index=False)
            print(f"  {args.task} seed {seed} {method:14s} HV={row['hypervolume']:.4f} "
                  f"epochs={row['finetune_epochs']} {compression:.1f}x at 1 point "
                  f"{seconds:.0f}s", flush=True)
        distances = igd_plus_by_method(seed_trials, args.accuracy_floor)
        for row in rows:
            if row["seed"] == seed:
                row["igd_plus"] = distances.get(row["method"], float("nan"))
        if sweep_trials is not None and "default" in args.methods:
            default = seed_trials["default"][0]
            hits, total = covers_sweep(default, sweep_trials)
            for row in rows:
                if row["seed"] == seed and row["method"] == "default":
                    row["sweep_points_matched"] = f"{hits}/{total}"
    table = pd.DataFrame(rows)
    return table, pd.concat(curves)


def front_losses(trials: pd.DataFrame, dense: dict, floor: float = ACCURACY_FLOOR) -> np.ndarray:
    """Normalised losses (as for the hypervolume) of the non-dominated completed trials at or
    above the accuracy floor."""
    done = trials[trials["state"] == "COMPLETE"].dropna(subset=METRICS)
    done = done[done["accuracy"] >= floor]
    if done.empty:
        return np.zeros((0, len(METRICS)))
    losses, _ = normalised_losses(done, METRICS, DIRECTIONS, dense)
    return losses[pareto_front(losses, [MINIMIZE] * len(METRICS))]


def igd_plus(points: np.ndarray, reference: np.ndarray) -> float:
    """IGD+ (Ishibuchi et al., 2015) of ``points`` against the ``reference`` front, all objectives
    minimised: the mean over reference points of the distance to the nearest point, counting only
    the objectives in which the point is worse. 0 = covers the reference front; lower is better."""
    if len(reference) == 0:
        return float("nan")
    if len(points) == 0:
        return float("inf")
    worse = np.maximum(points[None, :, :] - reference[:, None, :], 0.0)
    return float(np.sqrt((worse ** 2).sum(axis=2)).min(axis=1).mean())


def igd_plus_by_method(runs: dict[str, tuple[pd.DataFrame, dict]],
                       floor: float = ACCURACY_FLOOR) -> dict[str, float]:
    """Each method's IGD+ against the union front of all methods of one seed (one dense reference,
    so one normalisation)."""
    fronts = {method: front_losses(trials, dense, floor) for method, (trials, dense) in runs.items()}
    union = np.concatenate([f for f in fronts.values() if len(f)] or [np.zeros((0, 3))])
    reference = np.unique(union[pareto_front(union, [MINIMIZE] * len(METRICS))], axis=0)
    return {method: igd_plus(front, reference) for method, front in fronts.items()}


def smallest_within(trials: pd.DataFrame, dense: dict) -> tuple[float, float]:
    """(dense FLOPs / FLOPs, test accuracy drop in points) of the smallest completed trial whose
    validation accuracy is within ``WITHIN`` of the dense model's (selected on validation)."""
    done = trials[(trials["state"] == "COMPLETE")
                  & (trials["accuracy"] >= dense["accuracy"] - WITHIN)].dropna(subset=["flops"])
    if done.empty:
        return float("nan"), float("nan")
    best = done.sort_values(["flops", "accuracy"], ascending=[True, False]).iloc[0]
    drop = 100 * (dense.get("test_accuracy", np.nan) - best.get("test_accuracy", np.nan))
    return float(dense["flops"] / best["flops"]), float(drop)


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


def median_curves(curves: pd.DataFrame, points: int = 60) -> pd.DataFrame:
    """Per method, the median over seeds of hypervolume against fine-tune epochs (step curves
    read on one grid)."""
    grid = np.linspace(0, curves["epochs"].max(), points)
    rows = []
    for method, group in curves.groupby("method", sort=False):
        per_seed = []
        for _, run in group.groupby("seed"):
            at = np.searchsorted(run["epochs"].to_numpy(), grid, side="right") - 1
            values = run["hypervolume"].to_numpy()
            per_seed.append(np.where(at >= 0, values[np.clip(at, 0, None)], 0.0))
        rows.append(pd.DataFrame({"method": method, "epochs": grid,
                                  "hypervolume": np.median(per_seed, axis=0)}))
    return pd.concat(rows)


def plot_curves(curves: pd.DataFrame, title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.2))
    for method, group in median_curves(curves).groupby("method", sort=False):
        axis.step(group["epochs"], group["hypervolume"], where="post", label=method,
                  linewidth=2.4 if method == "default" else 1.2)
    axis.set_xlabel("fine-tune epochs spent")
    axis.set_ylabel("hypervolume (median over seeds)")
    axis.set_title(title, fontsize=10)
    top = curves["hypervolume"].max()
    axis.set_ylim(max(0.0, top - 0.15), top + 0.01)
    axis.legend(fontsize=8, loc="lower right")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def verdict(summary: pd.DataFrame) -> list[str]:
    """Does the default beat every other method in median hypervolume, IGD+ and compression?"""
    if "default" not in summary.index or len(summary) < 2:
        return []
    others = summary.drop(index="default")
    mine = summary.loc["default"]
    lines = []
    for column, better, label in (("hypervolume", max, "hypervolume (higher is better)"),
                                  ("igd_plus", min, "IGD+ (lower is better)"),
                                  ("compression_1pt", max, "compression at 1 point (higher)")):
        if column not in summary or pd.isna(mine[column]):
            lines.append(f"default has no median {label} (nothing measured)")
            continue
        values = others[column].dropna()
        best_other = better(values) if len(values) else None
        leader = (values.idxmax() if better is max else values.idxmin()) if len(values) else "-"
        if best_other is None or (mine[column] > best_other if better is max
                                  else mine[column] < best_other):
            word = "beats"
        elif mine[column] == best_other:
            word = "ties with the best of"
        else:
            word = "does NOT beat"
        lines.append(f"default {word} every other method in median {label}: "
                     f"{mine[column]:.4g} vs best other {leader} "
                     f"{best_other if best_other is None else f'{best_other:.4g}'}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="cnn", choices=["cnn", "mlp", *TASK_CONFIGS],
                        help="the task: digits with the built-in CNN or MLP, or vit (the tiny "
                             "ViT of examples/vit_digits.yaml on digits)")
    parser.add_argument("--config", metavar="YAML",
                        help="your own task instead of --model: a study config (model, data, "
                             "space, ...; its study, output_dir, seed, threads, n_trials and "
                             "fine-tune epochs are the benchmark's); the file's name names the "
                             "results")
    parser.add_argument("--accuracy-floor", type=float, default=ACCURACY_FLOOR,
                        help="the hypervolume's reference accuracy, fixed before the runs "
                             f"(default {ACCURACY_FLOOR}: a model below it adds nothing); set it "
                             "below the dense accuracy of a harder task")
    parser.add_argument("--trials", type=int, default=60, help="the default search's trials")
    parser.add_argument("--epochs", type=int, default=4, help="fine-tune epochs per trial")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=0,
                        help="seeds first-seed ... first-seed + seeds - 1 (to split a run)")
    parser.add_argument("--methods", nargs="+", default=[
        "default", "uniform_sweep", "global_sweep", "lamp_sweep", "erk_sweep",
        "nsga2", "random", "gp", "evo"])
    parser.add_argument("--equal-trials", action="store_true",
                        help="every method runs --trials trials (the old protocol); by default "
                             "the others get the fine-tune epochs the default spent")
    parser.add_argument("--epochs-from", metavar="CSV",
                        help="give every method (the default too) a budget of the fine-tune "
                             "epochs the default of this earlier table spent, seed by seed: a "
                             "changed default, e.g. default+refine:0.01@5, measured against that "
                             "table's rows, which a run in the same --out then resumes")
    parser.add_argument("--out", default="benchmarks/results/search_quality")
    parser.add_argument("--results", default="benchmarks/results",
                        help="where the tables, curves and the PNG are kept")
    parser.add_argument("--tiny", action="store_true", help="smoke test: synthetic data, 6 trials")
    parser.add_argument("--summarize", action="store_true",
                        help="run nothing: print the table and redraw the PNG from the CSVs in "
                             "--results")
    args = parser.parse_args(argv)
    if not 0.0 <= args.accuracy_floor < 1.0:
        parser.error(f"--accuracy-floor must be in [0, 1), got {args.accuracy_floor}")
    if args.config and not Path(args.config).is_file():
        parser.error(f"--config: no such file: {args.config}")
    args.task = Path(args.config).stem if args.config else args.model
    if args.tiny:
        args.trials, args.seeds, args.epochs = 6, 1, 2
        args.results = args.out
    out, results = Path(args.out), Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    results.mkdir(parents=True, exist_ok=True)
    name = f"search_quality_{args.task}"
    if args.summarize:
        table = pd.read_csv(results / f"{name}.csv")
        curves = pd.read_csv(results / f"{name}_curves.csv")
        args.seeds = table["seed"].nunique()
    else:
        table, curves = run(args)
        table.to_csv(results / f"{name}.csv", index=False)
        curves.to_csv(results / f"{name}_curves.csv", index=False)
    protocol = ("equal trials" if args.equal_trials
                else "every method gets the fine-tune epochs the default spent")
    plot_curves(curves, f"{args.task}: {args.seeds} seed(s), {protocol}",
                results / f"{name}.png")
    columns = ["hypervolume", "igd_plus", "compression_1pt", "test_drop_1pt", "finetune_epochs",
               "trials", "seconds"]
    summary = (table.groupby("method", sort=False)[columns].median()
               .sort_values("hypervolume", ascending=False))
    pd.set_option("display.width", 200)
    print("\nPer run:\n" + table.to_string(index=False))
    if not args.summarize:
        print(f"load average {os.getloadavg()[0]:.2f} (1 min) after the runs")
    print(f"\nMedian over {args.seeds} seed(s) ({args.task}, default {args.trials} trials, "
          f"{args.epochs} fine-tune epochs each; {protocol}; HV reference: accuracy "
          f"{args.accuracy_floor}, 1.1 x dense FLOPs and energy; IGD+ against the union front of all "
          f"methods of a seed; compression = dense FLOPs / FLOPs of the smallest model within "
          f"{WITHIN * 100:.0f} point of the dense val accuracy, test drop in points):\n"
          + summary.to_string(float_format=lambda v: f"{v:.4f}"))
    for line in verdict(summary):
        print(line)
    print(f"curves: {results / (name + '.png')}")
    if {"default", "plain_nsga2"} <= set(args.methods):
        reach = epochs_to_reach(curves, "default", "plain_nsga2")
        print("\nFine-tune epochs default needed to reach plain_nsga2's final hypervolume:\n"
              + reach.to_string(index=False))
        reach.to_csv(results / f"early_stopping_reach_{args.task}.csv", index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
