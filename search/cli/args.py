"""Arguments shared by the commands: the study (config, name, folder, storage) and its overrides,
and the pick constraints (read by ``pick``, ``export`` and ``report``)."""
from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from search.config import ExperimentConfig, load_config
from search.decide.pick import PickSettings


def add_study_args(parser: argparse.ArgumentParser) -> None:
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


def add_pick_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("pick constraints")
    group.add_argument("--max-flops", type=float, help="effective FLOPs per sample at most")
    group.add_argument("--min-accuracy", type=float, help="validation accuracy at least (0..1)")
    group.add_argument("--max-energy-uj", type=float, help="inference energy (µJ, est.) at most")
    group.add_argument("--max-size-kb", type=float, help="model size (KB) at most")
    group.add_argument("--knee", action="store_true", help="the knee of the feasible front")
    group.add_argument("--prefer", metavar="METRIC",
                       help="best feasible trial in METRIC (default: accuracy; with only "
                            "--min-accuracy: the first cost objective)")


def pick_settings(args: argparse.Namespace) -> PickSettings:
    return PickSettings(max_flops=args.max_flops, min_accuracy=args.min_accuracy,
                        max_energy_uj=args.max_energy_uj, max_size_kb=args.max_size_kb,
                        knee=args.knee, prefer=args.prefer)
