"""The commands that read and decide: ``pareto``, ``status``, ``pick``, ``reevaluate``,
``export``, ``report``, ``sensitivity``.

Registered on the main parser by ``search.cli.main``; each command is a thin layer over ``search.api``.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from search.cli.args import (add_floor_args, add_pick_args, add_study_args, floor_of,
                             pick_settings, refuse_python_model, resolve_config)
from search.decide.display import DEFAULT_FLOOR
from search.schema import ConfigError

EXIT_NOTHING_FITS = 1


def _open(args: argparse.Namespace):
    from search.study_result import open_existing

    return open_existing(resolve_config(args))


def cmd_status(args: argparse.Namespace) -> int:
    from search.decide.status import format_status

    status = _open(args).status()
    print(json.dumps(status.to_dict(), indent=2) if args.json else format_status(status))
    return 0


def cmd_pick(args: argparse.Namespace) -> int:
    from search.decide.pick import format_pick

    study = _open(args)
    result = study.pick(pick_settings(args))
    print(format_pick(result, study.metric))
    return 0 if result else EXIT_NOTHING_FITS


def cmd_reevaluate(args: argparse.Namespace) -> int:
    from search.decide.reevaluate import check_settings, format_summary

    check_settings(args.repeats, args.epochs)
    if args.trial and (args.all or args.floor != DEFAULT_FLOOR):
        raise ConfigError("reevaluate takes --trial numbers or --floor / --all, not both")
    floor = floor_of(args)
    summary = _open(args).reevaluate(args.trial, epochs=args.epochs, repeats=args.repeats,
                                     floor=floor)
    print(format_summary(summary))
    return 0 if len(summary) else EXIT_NOTHING_FITS


def cmd_export(args: argparse.Namespace) -> int:
    from search.decide.pick import format_pick

    trial = args.trial
    if args.config is not None and args.config.isdigit() and not Path(args.config).exists():
        if trial is not None:
            raise ConfigError(f"export takes one trial number, got '{args.config}' and '{trial}'")
        args.config, trial = None, args.config
    settings = pick_settings(args)
    if trial is not None and (args.pick or settings.any):
        raise ConfigError("export takes a trial number or --pick constraints, not both")
    if trial is None and not (args.pick or settings.any):
        raise ConfigError("export needs a trial number (e.g. `export 17`) or --pick with "
                          "constraints (e.g. `export --pick --max-flops 2e6`)")
    result = _open(args)
    if trial is None:
        found = result.pick(settings)
        print(format_pick(found, result.metric))
        if not found:
            return EXIT_NOTHING_FITS
        trial = found.trial
    exported = result.export(int(trial), folder=args.to)
    print(f"files: {', '.join(sorted(exported.manifest['files'].values()))} in {exported.folder}")
    return 0 if exported.reproduced else EXIT_NOTHING_FITS


def cmd_report(args: argparse.Namespace) -> int:
    settings = pick_settings(args)
    result = _open(args)
    index = result.report(picks=[settings] if settings.any else [], trials=args.trial or [],
                          folder=args.to)
    print(f"report: {index}")
    if settings.any:
        found = result.pick(settings)
        if not found:     # the page says so too; the report of the rest is still written
            print(f"no model picked: {found.reason}")
    return 0


def _grid(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"--grid must be comma-separated numbers such as 0.5,0.8,0.9, got '{text}'") from exc


def cmd_sensitivity(args: argparse.Namespace) -> int:
    from search.api import analyse_sensitivity
    from search.run.sensitivity import FOLDER, format_sensitivity

    config = resolve_config(args)
    if args.config is None and args.study and not (config.study_dir / "config.yaml").is_file():
        raise ConfigError(f"--study: no study '{args.study}' in '{config.output_dir}' (no "
                          f"config.yaml there); give a CONFIG file to analyse a new study's layers")
    if args.config is None:
        refuse_python_model(config, "the command line builds models from a config: call "
                                    "search.api.analyse_sensitivity(..., model_factory=, data=) "
                                    "with the study's model and data")
    if args.device:
        config = config.with_overrides(device=args.device)
    result = analyse_sensitivity(config, grid=args.grid, criterion=args.criterion,
                                 granularity=args.granularity, max_drop=args.max_drop)
    print(format_sensitivity(result, args.max_drop))
    print(f"\nwritten: {config.study_dir / FOLDER}")
    return 0


def add_decide_commands(sub: argparse._SubParsersAction) -> None:
    """Register the commands on the main parser's subparsers."""
    pareto = sub.add_parser("pareto", help="print the Pareto front of a study")
    add_study_args(pareto)
    pareto.add_argument("--format", default="table", choices=["table", "csv", "json", "markdown"])
    pareto.add_argument("--sort", metavar="METRIC", help="sort by a metric, best first")
    add_floor_args(pareto)
    pareto.set_defaults(func=cmd_pareto)
    status = sub.add_parser("status", help="trials by state, budget, time, front, hypervolume")
    add_study_args(status)
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(func=cmd_status)

    pick = sub.add_parser("pick", help="choose one trial by constraints or the knee")
    add_study_args(pick)
    add_pick_args(pick)
    pick.set_defaults(func=cmd_pick)

    reeval = sub.add_parser("reevaluate", help="retrain front trials with other seeds (and "
                                               "longer fine-tuning); store apart for pick")
    add_study_args(reeval)
    reeval.add_argument("--trial", type=int, nargs="+", action="extend", metavar="N",
                        help="re-evaluate these trials (default: the front, from the floor)")
    reeval.add_argument("--epochs", type=int, metavar="E",
                        help="fine-tune epochs of each repeat (default: the trial's own)")
    reeval.add_argument("--repeats", type=int, default=3, metavar="R",
                        help="fine-tunes per trial, seeds seed+1 ... seed+R (default 3)")
    add_floor_args(reeval, "re-evaluate", "")
    reeval.set_defaults(func=cmd_reevaluate)

    export = sub.add_parser("export", help="export a trial (number or --pick) as a model")
    add_study_args(export)
    export.add_argument("trial", nargs="?", help="trial number (or give it as the only argument)")
    export.add_argument("--pick", action="store_true", help="choose the trial by constraints")
    export.add_argument("--to", help="output folder (default: <study>/exports/<trial>)")
    add_pick_args(export)
    export.set_defaults(func=cmd_export)

    report = sub.add_parser("report", help="write <study>/report/ (figures + index.html)")
    add_study_args(report)
    report.add_argument("--trial", type=int, action="append",
                        help="describe this trial in detail (repeatable)")
    report.add_argument("--to", help="output folder (default: <study>/report)")
    add_pick_args(report)
    report.set_defaults(func=cmd_report)

    sens = sub.add_parser("sensitivity", help="per-layer accuracy when pruned alone (no "
                                              "fine-tuning) and weight statistics")
    add_study_args(sens)
    sens.add_argument("--grid", type=_grid, default=None,
                      help="sparsities, comma-separated (default 0.25,0.5,0.7,0.8,0.9,0.95,0.98)")
    sens.add_argument("--criterion", default="magnitude", help="pruning criterion")
    sens.add_argument("--granularity", default="unstructured",
                      help="unstructured | channel | n:m")
    sens.add_argument("--max-drop", type=float,
                      help="tolerated accuracy drop (e.g. 0.01): print per-layer sparsity bounds")
    sens.add_argument("--device", help="auto | cpu | cuda | cuda:N | mps")
    sens.set_defaults(func=cmd_sensitivity)


def cmd_pareto(args: argparse.Namespace) -> int:
    from search.decide.front_formats import render_front, sort_front
    from search.study_result import open_existing

    result = open_existing(resolve_config(args))
    display = result.front_display(floor_of(args))
    objectives = result.config.search.objectives
    front = sort_front(result.front(), args.sort, objectives.metrics, objectives.directions)
    print(render_front(front, args.format, display))
    return 0
