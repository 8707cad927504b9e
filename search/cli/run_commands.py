"""The commands that run trials: ``run`` (create or resume a study) and ``worker`` (join one)."""
from __future__ import annotations

import argparse

from search.cli.args import add_floor_args, add_study_args, floor_of, resolve_config
from search.run.backends.registry import BACKENDS
from search.run.samplers import SAMPLERS


def cmd_run(args: argparse.Namespace) -> int:
    from search.run.backends.fork_server import start_fork_server

    config = resolve_config(args)
    start_fork_server(config)   # local workers' imports run while this process imports and loads

    from search.api import run_search
    from search.decide.front_formats import render_front
    from search.decide.tables import headline_figures

    floor = floor_of(args)
    result = run_search(config)
    front = result.front()
    dense = result.dense_reference()
    if dense:
        figures = headline_figures(dense, result.metric)
        print("\nDense reference: " + " ".join(f"{c}={v}" for c, v in figures))
    print(f"\nPareto front of study '{config.study}' ({len(front)} trials; FLOPs (effective, "
          f"sparsity-aware) and size are counted per sample, energy_uJ is an analytic estimate, "
          f"(meas) is measured on this machine, train_J says its source):")
    print(render_front(front, "table", result.front_display(floor)))
    print(f"\nTables: {config.study_dir / 'trials.csv'}, {config.study_dir / 'pareto.csv'}")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from search.run.worker import run_worker

    run_worker(resolve_config(args))
    return 0


def add_run_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``run`` and ``worker`` on the main parser's subparsers."""
    run = sub.add_parser("run", help="run or resume a study")
    add_study_args(run)
    run.add_argument("--n-trials", type=int, help="trial budget (overrides the config)")
    run.add_argument("--budget-epochs", type=int, metavar="N",
                     help="budget in fine-tune epochs over the study (search.budget_epochs); "
                          "candidates screened out before fine-tuning spend none")
    run.add_argument("--sampler", choices=list(SAMPLERS), help="the study's sampler")
    run.add_argument("--device", help="auto | cpu | cuda | cuda:N | mps")
    run.add_argument("--workers", type=int, help="worker processes on this machine (optuna backend)")
    run.add_argument("--backend", choices=list(BACKENDS), help="who runs the trials")
    run.add_argument("--address", help="Ray cluster HOST:PORT or 'auto' (implies --backend ray)")
    run.add_argument("--threads", type=int, help="torch threads per worker (default cores/workers)")
    add_floor_args(run, note="; pareto.csv holds all")
    run.set_defaults(func=cmd_run)
    worker = sub.add_parser("worker", help="join an existing study and run its trials until the "
                                           "budget is reached (on this or another machine)")
    add_study_args(worker)
    worker.add_argument("--device", help="auto | cpu | cuda | cuda:N | mps")
    worker.add_argument("--threads", type=int, help="torch threads (default: the study's config.yaml threads)")
    worker.set_defaults(func=cmd_worker)
