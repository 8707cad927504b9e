"""Command line: ``sparsity-search run|worker|pareto|status|pick|export|report|sensitivity``.

A thin layer over ``search.api``; the deciding commands live in ``search.cli.decide_commands``."""
from __future__ import annotations

import argparse
import signal
import sys
import threading
from dataclasses import replace
from pathlib import Path

from search.config import ExperimentConfig, load_config
from search.schema import ConfigError

EXIT_BAD_INPUT = 2
EXIT_STUDY_STOPPED = 3


def _one_line(exc: BaseException) -> str:
    return " ".join(line.strip() for line in str(exc).splitlines() if line.strip())


def _add_study_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", nargs="?", help="study YAML (default: digits + built-in CNN)")
    parser.add_argument("--study", help="study name (overrides the config)")
    parser.add_argument("--output-dir", help="folder holding study folders (default: runs)")
    parser.add_argument("--storage", help="Optuna storage URL (default: SQLite in the study folder)")


def resolve_config(args: argparse.Namespace) -> ExperimentConfig:
    """The config file (or the study's saved config, or defaults) plus command-line overrides."""
    path = args.config
    if path is None and (args.study or args.output_dir):
        saved = Path(args.output_dir or "runs") / (args.study or "default") / "config.yaml"
        if saved.is_file():
            path = saved
    config = load_config(path)
    if args.study:
        config = replace(config, study=args.study)
    if args.output_dir:
        config = replace(config, output_dir=args.output_dir)
    search = config.search
    if getattr(args, "storage", None):
        search = replace(search, storage=args.storage)
    if getattr(args, "n_trials", None) is not None:
        search = replace(search, n_trials=args.n_trials)
    if getattr(args, "sampler", None):
        search = replace(search, sampler=args.sampler)
    config = replace(config, search=search)
    if getattr(args, "device", None):
        config = replace(config, device=args.device)
    return apply_parallel_args(config, args)


def apply_parallel_args(config: ExperimentConfig, args: argparse.Namespace) -> ExperimentConfig:
    """``--workers``, ``--backend``, ``--address``, ``--threads`` over the config's sections."""
    parallel, ray = config.parallel, config.ray
    if getattr(args, "workers", None) is not None:
        parallel = replace(parallel, workers=args.workers)
    if getattr(args, "backend", None):
        parallel = replace(parallel, backend=args.backend)
    if getattr(args, "address", None):
        ray = replace(ray, address=args.address)
        parallel = replace(parallel, backend="ray")
    if getattr(args, "threads", None) is not None:
        config = replace(config, threads=args.threads)
    return replace(config, parallel=parallel, ray=ray)


def cmd_run(args: argparse.Namespace) -> int:
    from search.api import run_search
    from search.decide.tables import format_front

    config = resolve_config(args)
    result = run_search(config)
    front = result.front()
    dense = result.dense_reference()
    if dense:
        print(f"\nDense reference: val_acc={dense['accuracy']:.4f} test_acc={dense['test_accuracy']:.4f}"
              f" MFLOPs={dense['flops'] / 1e6:.3f} energy_uJ(est)={dense['energy_uj']:.3f}"
              f" size_KB={dense['size_bytes'] / 1024:.1f}"
              + (f" latency_ms(meas)={dense['latency_ms']:.3f}" if "latency_ms" in dense else ""))
    print(f"\nPareto front of study '{config.study}' ({len(front)} trials; FLOPs (effective, "
          f"sparsity-aware) and size are counted per sample, energy_uJ is an analytic estimate, "
          f"(meas) is measured on this machine, train_J says its source):")
    print(format_front(front, config.search.objectives.metrics))
    print(f"\nTables: {config.study_dir / 'trials.csv'}, {config.study_dir / 'pareto.csv'}")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from search.run.worker import run_worker

    run_worker(resolve_config(args))
    return 0


def cmd_pareto(args: argparse.Namespace) -> int:
    from search.api import open_existing
    from search.decide.front_formats import render_front, sort_front

    result = open_existing(resolve_config(args))
    objectives = result.config.search.objectives
    front = sort_front(result.front(), args.sort, objectives.metrics, objectives.directions)
    print(render_front(front, args.format, objectives.metrics))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sparsity-search", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run or resume a study")
    _add_study_args(run)
    run.add_argument("--n-trials", type=int, help="trial budget (overrides the config)")
    run.add_argument("--sampler", help="nsga2 | tpe | random")
    run.add_argument("--device", help="auto | cpu | cuda | cuda:N | mps")
    run.add_argument("--workers", type=int, help="worker processes on this machine (optuna backend)")
    run.add_argument("--backend", choices=["optuna", "ray"], help="who runs the trials")
    run.add_argument("--address", help="Ray cluster HOST:PORT or 'auto' (implies --backend ray)")
    run.add_argument("--threads", type=int, help="torch threads per worker (default cores/workers)")
    run.set_defaults(func=cmd_run)
    worker = sub.add_parser("worker", help="join an existing study and run its trials until the "
                                           "budget is reached (on this or another machine)")
    _add_study_args(worker)
    worker.add_argument("--device", help="auto | cpu | cuda | cuda:N | mps")
    worker.add_argument("--threads", type=int, help="torch threads (default: all cores)")
    worker.set_defaults(func=cmd_worker)
    pareto = sub.add_parser("pareto", help="print the Pareto front of a study")
    _add_study_args(pareto)
    pareto.add_argument("--format", default="table", choices=["table", "csv", "json", "markdown"])
    pareto.add_argument("--sort", metavar="METRIC", help="sort by a metric, best first")
    pareto.set_defaults(func=cmd_pareto)
    from search.cli.decide_commands import add_decide_commands
    add_decide_commands(sub, _add_study_args)
    return parser


def main(argv: list[str] | None = None) -> int:
    from search.run.study import StudyStopped
    from trainers.errors import SetupError   # e.g. trainers.checkpoint.CheckpointError

    parser = build_parser()
    args = parser.parse_args(argv)
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _terminate)   # a scheduler's stop = Ctrl-C
    try:
        return args.func(args)
    except (ConfigError, SetupError) as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except StudyStopped as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_STUDY_STOPPED
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM ends a run like Ctrl-C: the running trial is marked interrupted and queued again,
    the tables are written; SIGKILL is handled by the sweep of the next run instead."""
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
