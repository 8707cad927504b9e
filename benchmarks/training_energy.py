"""Training energy: ``during_training`` + ``channel`` pruning vs dense training, same epochs.

Trains the built-in CNN from scratch on digits (the default study's dense settings: 40 epochs,
Adam, cosine LR) once densely and once per channel ratio with the ``during_training`` schedule
(train dense for ``prune_at`` of the epochs, remove that share of every hidden layer's channels
physically, train the smaller network for the rest). Reports measured training time, training
energy with its source label (``estimate`` = CPU time x watts per core where no counter exists),
analytic training FLOPs, and validation / test accuracy, each averaged over ``--seeds``.

    python benchmarks/training_energy.py            # the table of the README
    python benchmarks/training_energy.py --tiny     # seconds, for the smoke test
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402
import torch  # noqa: E402

from spaces.candidate import Candidate  # noqa: E402
from trainers.costs import cost_basis, load_profile, make_meter  # noqa: E402
from trainers.data import DataSettings, load_data  # noqa: E402
from trainers.eval_context import EvalContext  # noqa: E402
from trainers.method_parts import train_flops  # noqa: E402
from trainers.models import SmallCNN  # noqa: E402
from trainers.pruning import PruningSettings  # noqa: E402
from trainers.schedules import run_schedule  # noqa: E402
from trainers.train_settings import TrainSettings  # noqa: E402
from trainers.training import measure_metric, train_epochs  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ratios", type=float, nargs="+", default=[0.5, 0.75])
    parser.add_argument("--criterion", default="l2")
    parser.add_argument("--width", type=int, default=16, help="CNN width (default: the study's 16)")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--prune-at", type=float, default=0.2)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--csv", default="benchmarks/results/training_energy.csv")
    parser.add_argument("--tiny", action="store_true", help="a few seconds (smoke test)")
    args = parser.parse_args(argv)
    for name, low in (("seeds", 1), ("epochs", 1), ("threads", 1), ("width", 1)):
        if getattr(args, name) < low:
            parser.error(f"--{name} must be >= {low}, got {getattr(args, name)}")
    if not 0.0 < args.prune_at < 1.0:
        parser.error(f"--prune-at must be in (0, 1), got {args.prune_at}")
    bad = [r for r in args.ratios if not 0.0 < r < 1.0]
    if bad:
        parser.error(f"--ratios must be in (0, 1), got {bad[0]}")
    args.data = DataSettings(name="digits")
    if args.tiny:
        args.epochs, args.seeds, args.ratios = 4, 1, [0.5]   # 1 dense epoch, 3 pruned
        args.data = DataSettings(name="synthetic", options={"samples": 120, "classes": 4})
    return args


def make_context(args: argparse.Namespace) -> EvalContext:
    data = load_data(args.data)

    def factory() -> torch.nn.Module:
        return SmallCNN(data.input_shape[0], data.num_classes, width=args.width,
                        input_size=data.input_shape[-1])

    probe = factory()
    basis = cost_basis(probe, data.input_shape)
    dense = TrainSettings(epochs=args.epochs, lr=2e-3, weight_decay=1e-4)
    return EvalContext(
        model_factory=factory, data=data, dense_state=probe.state_dict(), layers=basis.layers,
        finetune=dense, batch_size=args.data.batch_size, device=torch.device("cpu"),
        profile=load_profile(), other_params=basis.other_params, other_flops=basis.other_flops,
        pruning=PruningSettings(prune_at=args.prune_at), dense_train=dense)


def accuracies(model: torch.nn.Module, context: EvalContext) -> tuple[float, float]:
    return (measure_metric(model, context.data.val, context.device),
            measure_metric(model, context.data.test, context.device))


def run_dense(context: EvalContext, seed: int) -> dict:
    torch.manual_seed(seed)
    model = context.model_factory()
    meter = make_meter("auto")
    meter.start()
    train_epochs(model, context.data.train, context.dense_train, batch_size=context.batch_size,
                 device=context.device, seed=seed)
    reading = meter.stop()
    val, test = accuracies(model, context)
    return {"seconds": reading.seconds, "energy_j": reading.joules, "source": reading.source,
            "train_flops": train_flops(model, context, context.dense_train.epochs),
            "val_accuracy": val, "test_accuracy": test}


def run_pruned(context: EvalContext, ratio: float, criterion: str, seed: int) -> dict:
    names = [layer.name for layer in context.layers]
    candidate = Candidate(sparsity={n: ratio for n in names[:-1]}, bits={}, criterion=criterion,
                          granularity="channel", schedule="during_training", seed=seed)
    torch.manual_seed(seed)
    meter = make_meter("auto")
    meter.start()
    run = run_schedule(candidate, context)
    reading = meter.stop()
    val, test = accuracies(run.model, context)
    return {"seconds": reading.seconds, "energy_j": reading.joules, "source": reading.source,
            "train_flops": run.train_flops, "val_accuracy": val, "test_accuracy": test}


def summarise(name: str, runs: list[dict], dense: dict | None) -> dict:
    row = {"method": name, "energy_source": runs[0]["source"], "seeds": len(runs)}
    for key in ("seconds", "energy_j", "train_flops", "val_accuracy", "test_accuracy"):
        row[key] = statistics.mean(r[key] for r in runs)
    if dense is not None:
        row["time_saved"] = 1 - row["seconds"] / dense["seconds"]
        row["energy_saved"] = 1 - row["energy_j"] / dense["energy_j"]
        row["flops_saved"] = 1 - row["train_flops"] / dense["train_flops"]
        row["test_accuracy_change_points"] = 100 * (row["test_accuracy"] - dense["test_accuracy"])
    else:
        row.update(time_saved=0.0, energy_saved=0.0, flops_saved=0.0,
                   test_accuracy_change_points=0.0)
    return row


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    context = make_context(args)
    seeds = list(range(args.seeds))
    dense_runs, pruned_runs = [], {ratio: [] for ratio in args.ratios}
    for seed in seeds:          # interleaved, so that machine load hits every method alike
        dense_runs.append(run_dense(context, seed))
        for ratio in args.ratios:
            pruned_runs[ratio].append(run_pruned(context, ratio, args.criterion, seed))
    dense = summarise("dense", dense_runs, None)
    rows = [dense] + [summarise(f"during_training channel {ratio:.0%} ({args.criterion})",
                                runs, dense) for ratio, runs in pruned_runs.items()]
    print(f"{args.data.name}, built-in CNN (width {args.width}), {args.epochs} epochs, cut after {args.prune_at:.0%} of "
          f"them, CPU {args.threads} thread(s), mean of {args.seeds} seed(s); time measured, "
          f"energy source in the table, FLOPs analytic (3 x forward)")
    print(f"{'method':>38} {'time s':>7} {'saved':>6} {'energy J':>9} {'source':>8} {'saved':>6} "
          f"{'FLOPs saved':>11} {'val acc':>7} {'test acc':>8} {'d test pts':>10}")
    for r in rows:
        print(f"{r['method']:>38} {r['seconds']:>7.2f} {r['time_saved']:>6.0%} "
              f"{r['energy_j']:>9.1f} {r['energy_source']:>8} {r['energy_saved']:>6.0%} "
              f"{r['flops_saved']:>11.0%} {r['val_accuracy']:>7.4f} {r['test_accuracy']:>8.4f} "
              f"{r['test_accuracy_change_points']:>+10.2f}")
    path = Path(args.csv)
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, index=False)
    print(f"\nCSV: {path}")
    print(f"load average {os.getloadavg()[0]:.2f} (1 min) after the run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
