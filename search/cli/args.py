"""Arguments shared by the commands: the study (config, name, folder, storage) and its overrides,
and the pick constraints (read by ``pick``, ``export`` and ``report``): one flag per bound of the
metric registry (``search.decide.constraints.pick_bounds``)."""
from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from search.config import ExperimentConfig, load_config
from search.decide.constraints import ACCURACY_BOUNDS, PickSettings, pick_bounds
from search.decide.display import DEFAULT_FLOOR
from search.schema import ConfigError


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
    if getattr(args, "budget_epochs", None) is not None:
        search = replace(search, budget_epochs=args.budget_epochs)
    if getattr(args, "sampler", None):
        search = replace(search, sampler=args.sampler)
    config = replace(config, search=search)
    if getattr(args, "device", None):
        config = replace(config, device=args.device)
    return apply_parallel_args(config, args)


def refuse_python_model(config: ExperimentConfig, what: str) -> None:
    """Refuse a command that builds the model from a study's config.yaml when the study ran a
    model passed from Python: the file names the default model, not what ran (``what``: why and
    what to do instead)."""
    if not (config.study_dir / "config.yaml").is_file():
        return
    from search.study_result import open_existing

    try:
        source = open_existing(config).sources.get("model", "config")
    except ConfigError:        # no storage beside it: nothing known to refuse
        return
    if source.startswith("python:"):
        raise ConfigError(f"study '{config.study}' ran a model passed from Python ({source}); "
                          f"{what}")


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


def add_floor_args(parser: argparse.ArgumentParser, verb: str = "print",
                   note: str = "; csv and json hold all") -> None:
    """``--floor F`` / ``--all``: which front points the command reads (``verb``: what it does
    with them; ``note`` ends the help of ``--floor``)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--floor", type=float, default=DEFAULT_FLOOR, metavar="F",
                       help=f"{verb} the front points with validation accuracy >= dense accuracy "
                            f"- F (default {DEFAULT_FLOOR}; 1 means all{note})")
    group.add_argument("--all", action="store_true", help=f"{verb} every front point")


def floor_of(args: argparse.Namespace) -> float | None:
    """The display floor the arguments ask for (``None``: every point)."""
    if args.all:
        return None
    if not args.floor >= 0:
        raise ConfigError(f"--floor must be >= 0 (an accuracy drop from dense), got {args.floor}")
    return args.floor


class _BoundInOrder(argparse.Action):
    """Stores the bound and also records it in ``pick_bounds``, in command-line order (messages
    list the constraints as the user wrote them)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        setattr(namespace, self.dest, values)
        namespace.pick_bounds = {**(getattr(namespace, "pick_bounds", None) or {}),
                                 self.dest: values}


def add_pick_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("pick constraints")
    for bound in pick_bounds().values():
        group.add_argument(bound.flag, type=float, action=_BoundInOrder,
                           metavar=bound.name.upper(), help=bound.help)
    group.add_argument("--accuracy-bound", choices=list(ACCURACY_BOUNDS),
                       default=ACCURACY_BOUNDS[0],
                       help="what --min-accuracy bounds: the measured accuracy (point, default) "
                            "or the lower end of its 95%% binomial interval (lower)")
    group.add_argument("--reevaluated", action="store_true",
                       help="read each trial's re-evaluated accuracy (`reevaluate`; mean over "
                            "its repeats) instead of the search's own; trials without one are "
                            "left out")
    group.add_argument("--knee", action="store_true", help="the knee of the feasible front")
    group.add_argument("--prefer", metavar="METRIC",
                       help="best feasible trial in METRIC (default: accuracy; with only "
                            "--min-accuracy: the first cost objective)")


def pick_settings(args: argparse.Namespace) -> PickSettings:
    return PickSettings(getattr(args, "pick_bounds", None), knee=args.knee, prefer=args.prefer,
                        accuracy_bound=args.accuracy_bound, reevaluated=args.reevaluated)
