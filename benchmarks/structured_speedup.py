"""Structured speedup: the built-in CNN with 25/50/75% of its channels physically removed.

For each channel ratio: parameters, FLOPs per sample (torch's FlopCounterMode, 2 per MAC) and the
measured CPU latency of a batch (median over interleaved rounds, so that load changes on the
machine hit every model alike), with the speedup over the dense model next to the FLOPs ratio.
Channels go by L2 norm through ``trainers.pruning.shrink_model`` (torch-pruning's dependency graph);
the classifier keeps its outputs. Weights are random: latency does not depend on their values.

    python benchmarks/structured_speedup.py              # the table of the README
    python benchmarks/structured_speedup.py --tiny       # seconds, for the smoke test
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

from trainers.costs import LatencySettings, count_flops, measure_latency_ms  # noqa: E402
from trainers.discovery import discover_layers  # noqa: E402
from trainers.models import SmallCNN  # noqa: E402
from trainers.pruning import shrink_model  # noqa: E402

INPUT_SHAPE = (1, 8, 8)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=16, help="CNN width (default: the study's 16)")
    parser.add_argument("--ratios", type=float, nargs="+", default=[0.25, 0.5, 0.75])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=21, help="interleaved timing rounds")
    parser.add_argument("--repeats", type=int, default=30, help="timed passes per round")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--csv", default="benchmarks/results/structured_speedup.csv")
    parser.add_argument("--tiny", action="store_true", help="a few seconds (smoke test)")
    args = parser.parse_args(argv)
    if args.tiny:
        args.width, args.batch, args.rounds, args.repeats = 4, 8, 1, 2
    return args


def build_models(width: int, ratios: list[float]) -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    dense = SmallCNN(INPUT_SHAPE[0], 10, width=width, input_size=INPUT_SHAPE[-1]).eval()
    names = [layer.name for layer in discover_layers(dense, INPUT_SHAPE)]
    example = torch.zeros(1, *INPUT_SHAPE)
    models = {"dense": dense}
    for ratio in ratios:
        models[f"{ratio:.0%}"] = shrink_model(dense, example, {n: ratio for n in names},
                                              criterion="l2").eval()
    return models


def measure(models: dict[str, torch.nn.Module], args: argparse.Namespace) -> list[dict]:
    settings = LatencySettings(batch_size=args.batch, warmup=3, repeats=args.repeats)
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(args.rounds):
        for name, model in models.items():
            times[name].append(measure_latency_ms(model, INPUT_SHAPE, torch.device("cpu"), settings))
    example = torch.zeros(1, *INPUT_SHAPE)
    rows = []
    dense_flops = count_flops(models["dense"], example)
    dense_ms = statistics.median(times["dense"])
    for name, model in models.items():
        flops = count_flops(model, example)
        ms = statistics.median(times[name])
        rows.append({
            "channels_removed": name, "params": sum(p.numel() for p in model.parameters()),
            "flops_per_sample": flops, "flops_ratio": dense_flops / flops,
            "latency_ms": round(ms, 4), "speedup": dense_ms / ms,
            "speedup_over_flops_ratio": (dense_ms / ms) / (dense_flops / flops),
        })
    return rows


def print_table(rows: list[dict], args: argparse.Namespace) -> None:
    print(f"Built-in CNN (width {args.width}), CPU, batch {args.batch}, {args.threads} thread(s), "
          f"median of {args.rounds} interleaved rounds x {args.repeats} passes (measured)")
    print(f"{'channels removed':>16} {'params':>9} {'FLOPs/sample':>13} {'FLOPs ratio':>11} "
          f"{'latency ms':>10} {'speedup':>8} {'speedup/FLOPs ratio':>19}")
    for r in rows:
        print(f"{r['channels_removed']:>16} {r['params']:>9} {r['flops_per_sample']:>13} "
              f"{r['flops_ratio']:>10.2f}x {r['latency_ms']:>10.3f} {r['speedup']:>7.2f}x "
              f"{r['speedup_over_flops_ratio']:>19.2f}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = measure(build_models(args.width, args.ratios), args)
    print_table(rows, args)
    path = Path(args.csv)
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, index=False)
    print(f"\nCSV: {path}")
    print(f"load average {os.getloadavg()[0]:.2f} (1 min) after the run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
