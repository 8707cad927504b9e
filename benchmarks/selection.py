"""Honest selection: does re-evaluating the front before `pick` keep the test accuracy promised?

A validation split of a few hundred images decides ties by one or two images, and a candidate whose
fine-tune was lucky looks better than it is. This benchmark takes finished studies and asks, for
the smallest model within 1 point of the dense validation accuracy (what `pick --min-accuracy`
returns; selected on validation, never on test), how many test points it really loses, under four
rules:

- ``search``       the search's own validation accuracy (`pick --min-accuracy A`)
- ``lower``        the lower end of its 95% Wilson interval (`--accuracy-bound lower`)
- ``reevaluated``  the mean of ``--repeats`` re-trainings with other seeds (`sparsity-search
                   reevaluate`, then `pick --reevaluated`)
- ``reeval+lower`` both

Per study: the chosen trial, its compression (dense FLOPs / FLOPs) and its test accuracy drop
against the dense model in points; then the medians. The re-evaluation writes
``reevaluation.csv`` into each study folder (apart from the search's figures).

    python benchmarks/selection.py /tmp/sq/cnn/cnn-s*-default      # studies of search_quality.py
    python benchmarks/selection.py --tiny                           # smoke test
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from search.api import run_search  # noqa: E402
from search.config import config_from_dict, load_config  # noqa: E402
from search.decide.constraints import PickSettings  # noqa: E402
from search.study_result import open_existing  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from table_output import save_and_print  # noqa: E402

WITHIN = 0.01
RULES = {"search": {}, "lower": {"accuracy_bound": "lower"},
         "reevaluated": {"reevaluated": True},
         "reeval+lower": {"reevaluated": True, "accuracy_bound": "lower"}}


def judge(folder: Path, repeats: int) -> list[dict]:
    """The four rules' choices on the study in ``folder``."""
    result = open_existing(load_config(folder / "config.yaml"))
    dense = result.dense_reference()
    result.reevaluate(repeats=repeats, log=lambda _: None)
    trials = result.trials().set_index("trial")
    rows = []
    for rule, options in RULES.items():
        picked = result.pick(PickSettings(min_accuracy=dense["accuracy"] - WITHIN, **options))
        row = {"study": folder.name, "rule": rule, "trial": picked.trial}
        if picked:
            flops = trials.loc[picked.trial, "flops"]
            row.update({"compression": dense["flops"] / flops,
                        "searched_val": trials.loc[picked.trial, "accuracy"],
                        "chosen_val": picked.row["accuracy"],
                        "test_drop_points": 100 * (dense["test_accuracy"]
                                                   - trials.loc[picked.trial, "test_accuracy"])})
        rows.append(row)
    return rows


def tiny_study(out: Path) -> Path:
    config = config_from_dict({
        "output_dir": str(out), "study": "tiny", "threads": 1, "seed": 0,
        "data": {"name": "synthetic", "options": {"samples": 240, "classes": 4}},
        "model": {"name": "mlp", "options": {"hidden": [16]}}, "dense": {"epochs": 3, "lr": 0.005},
        "finetune": {"epochs": 1}, "search": {"n_trials": 6}})
    run_search(config, log=lambda _: None)
    return config.study_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("studies", nargs="*", type=Path, help="finished study folders")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/selection.csv")
    parser.add_argument("--tiny", action="store_true", help="smoke test: one tiny study")
    args = parser.parse_args(argv)
    if args.tiny:
        args.studies, args.repeats = [tiny_study(Path(args.out).parent)], 2
    if not args.studies:
        parser.error("give study folders (e.g. the *-default studies of search_quality.py)")
    rows = [row for folder in args.studies for row in judge(folder, args.repeats)]
    table = pd.DataFrame(rows)
    save_and_print(table, args.out, 4, when="after the runs")
    summary = table.groupby("rule", sort=False)[["compression", "test_drop_points"]].median()
    summary.insert(0, "studies_with_a_pick", table.groupby("rule", sort=False)["trial"].count())
    print(f"\nMedian over {len(args.studies)} studies (smallest model within {WITHIN * 100:.0f} "
          f"point of the dense val accuracy; test drop in points, lower is better; "
          f"{args.repeats} re-trainings per front point; no pick: nothing qualifies):\n"
          + summary.to_string(float_format=lambda v: f"{v:.2f}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
