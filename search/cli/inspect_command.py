"""``sparsity-search inspect``: the layers a study would search, before it runs.

For each prunable layer: kind, weight shape, parameters, dense FLOPs per sample, searched or not
and why (an excluded classifier, a zero bound) and its group; the weight matrices that are not
layers (with the reason); the weight-free work no pruning removes (attention's products); and the
totals next to ``FlopCounterMode``'s. The torch-heavy part is ``trainers.inspection``.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import replace
from typing import Any

from search.cli.args import add_study_args, refuse_python_model, resolve_config
from search.config import ExperimentConfig, criteria_by_granularity
from search.schema import ConfigError


def parse_shape(text: str) -> tuple[int, ...]:
    """``"3,224,224"`` -> ``(3, 224, 224)``; one clear error otherwise."""
    try:
        shape = tuple(int(part) for part in text.split(","))
    except ValueError:
        shape = ()
    if not shape or any(size < 1 for size in shape):
        raise ConfigError(f"--input-shape must be sizes >= 1 separated by commas (e.g. 3,224,224), "
                          f"got '{text}'")
    return shape


def _shape_and_classes(config: ExperimentConfig, args: argparse.Namespace
                       ) -> tuple[tuple[int, ...], int]:
    if args.num_classes is not None and args.num_classes < 1:
        raise ConfigError(f"--num-classes must be an integer >= 1, got {args.num_classes}")
    if args.input_shape and args.num_classes:
        return parse_shape(args.input_shape), args.num_classes
    from trainers.data import load_data
    from trainers.errors import SetupError

    try:
        data = load_data(config.data)
    except SetupError as exc:
        raise ConfigError(f"{exc} (or give --input-shape and --num-classes)") from exc
    shape = parse_shape(args.input_shape) if args.input_shape else tuple(data.input_shape)
    return shape, args.num_classes or data.num_classes


def inspect_study_model(config: ExperimentConfig, input_shape: tuple[int, ...],
                        num_classes: int) -> dict[str, Any]:
    """The report as plain data (what ``--json`` prints)."""
    from spaces.space import SearchSpace
    from trainers.errors import SetupError
    from trainers.inspection import inspect_model
    from trainers.models import build_model

    try:
        model = build_model(config.model, input_shape, num_classes)
        report = inspect_model(model, input_shape)
        space = SearchSpace(report.layers, config.space, seed=config.seed,
                            criteria_by_granularity=criteria_by_granularity(config.space))
    except (SetupError, ValueError, RuntimeError) as exc:
        if str(exc).startswith("model factory "):   # names the model already, as run says it
            raise ConfigError(str(exc)) from exc
        raise ConfigError(f"model '{config.model.name}' with input shape {input_shape}: "
                          f"{exc}") from exc
    bounds = space.sparsity_bounds()
    layers = []
    for layer in report.layers:
        low, high = bounds[layer.name]
        layers.append({
            "name": layer.name, "kind": layer.kind, "shape": list(layer.weight_shape),
            "params": layer.params, "flops_dense": 2 * layer.macs, "searched": high > low,
            "why": _why(layer, config, high), "sparsity_range": [low, high],
            "group": space.group_of(layer.name)})
    return {
        "model": config.model.name, "input_shape": list(input_shape), "num_classes": num_classes,
        "layers": layers,
        "not_searched_weights": [{"name": o.name, "shape": list(o.shape), "reason": o.reason}
                                 for o in report.others],
        "flops": {"prunable": report.prunable_flops, "weight_free": report.free_flops,
                  "weight_free_by_op": report.free_by_op, "other_fixed": report.other_flops,
                  "non_prunable": report.non_prunable_flops,
                  "dense_total": report.prunable_flops + report.non_prunable_flops,
                  "flop_counter_mode": report.flop_counter,
                  "flop_counter_mode_as_shipped": report.flop_counter_plain},
        "params": {"total": report.params_total,
                   "prunable": sum(layer.params for layer in report.layers)},
    }


def _why(layer, config: ExperimentConfig, high: float) -> str:
    if layer.is_classifier and config.space.classifier == "exclude":
        return "classifier (space.classifier: exclude)"
    if high <= config.space.sparsity.low:
        return "upper bound = lower bound (space.max_sparsity or space.sparsity)"
    if layer.is_classifier:
        return f"classifier (space.classifier: {config.space.classifier}, up to {high:g})"
    return ""


def format_report(data: dict[str, Any]) -> str:
    """The report as a table and a few lines of totals."""
    rows = [("layer", "kind", "shape", "params", "MFLOPs", "searched", "group / why")]
    for layer in data["layers"]:
        rows.append((layer["name"], layer["kind"], "x".join(map(str, layer["shape"])),
                     f"{layer['params']:,}", f"{layer['flops_dense'] / 1e6:.3f}",
                     "yes" if layer["searched"] else "no",
                     layer["why"] or (f"group {layer['group']}" if layer["group"] else "")))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
             for row in rows]
    for other in data["not_searched_weights"]:
        lines.append(f"not searched: {other['name']} {tuple(other['shape'])}: {other['reason']}")
    flops = data["flops"]
    by_op = ", ".join(f"{op} {value / 1e6:.3f}" for op, value in flops["weight_free_by_op"].items())
    lines += [
        f"prunable FLOPs per sample:      {flops['prunable'] / 1e6:,.3f} M",
        f"weight-free products (fixed):   {flops['weight_free'] / 1e6:,.3f} M"
        + (f" ({by_op})" if by_op else ""),
        f"other fixed FLOPs:              {flops['other_fixed'] / 1e6:,.3f} M",
        f"dense total:                    {flops['dense_total'] / 1e6:,.3f} M",
        f"FlopCounterMode:                {flops['flop_counter_mode'] / 1e6:,.3f} M"
        + _as_shipped(flops),
        f"parameters: {data['params']['total']:,} ({data['params']['prunable']:,} in prunable "
        f"layers)",
    ]
    return "\n".join(lines)


def _as_shipped(flops: dict[str, Any]) -> str:
    shipped = flops["flop_counter_mode_as_shipped"]
    if shipped == flops["flop_counter_mode"]:
        return ""
    return (f" (as torch ships it: {shipped / 1e6:,.3f} M; it has no formula for the CPU kernel of "
            f"scaled_dot_product_attention)")


def cmd_inspect(args: argparse.Namespace) -> int:
    config = resolve_config(args)
    if args.model:
        from trainers.models import ModelSettings

        config = replace(config, model=ModelSettings(args.model))
    elif args.config is None:
        refuse_python_model(config, "inspect builds models from a config: give --model (a "
                                    "name or module:callable), or call "
                                    "trainers.inspection.inspect_model on the model in Python")
    shape, classes = _shape_and_classes(config, args)
    data = inspect_study_model(config, shape, classes)
    print(json.dumps(data, indent=2) if args.json else format_report(data))
    return 0


def add_inspect_command(sub: argparse._SubParsersAction) -> None:
    """Register ``inspect`` on the main parser's subparsers."""
    parser = sub.add_parser("inspect", help="the layers a study would search, their FLOPs and "
                                            "the totals next to FlopCounterMode's")
    add_study_args(parser)
    parser.add_argument("--model", help="model name (overrides the config), e.g. "
                                        "torchvision:vit_b_16")
    parser.add_argument("--input-shape", help="one sample's shape, e.g. 3,224,224 (default: the "
                                              "data set's)")
    parser.add_argument("--num-classes", type=int, help="classes (default: the data set's); with "
                                                        "--input-shape no data is loaded")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=cmd_inspect)
