"""Benchmark: one study, same budget, run by 1 local worker, 2 local workers and Ray (2 at once).

    python benchmarks/parallel.py            # the default study (digits + CNN, 60 trials)
    python benchmarks/parallel.py --tiny     # seconds-long smoke run (tests/benchmarks)

The dense reference is trained once, before any timing, and copied into each path's study folder
(every path loads it, as workers do). For each path it reports:

- ``wall_s``: ``run_search`` from call to return, dense training excluded (start-up of worker
  processes or of the Ray runtime included, as a user waits for it);
- ``trials_per_hour`` and ``speedup`` (trials/hour over the 1-worker path's);
- ``trials``: finished trials (completed or stopped early: what the budget counts);
- ``eval_s``: mean time a trial spends evaluating its candidate (pruning, fine-tuning, measuring;
  up to the stop for a trial stopped early);
- ``overhead_s``: per-trial orchestration overhead, ``(slots * wall_s - sum(eval)) / trials``:
  all time a trial slot is not training or evaluating (start-up, sampling, storage writes, Ray's
  scheduling and result handling, idle slots at the end), spread over the trials;
- ``steady_overhead_s``: the same over the span from the first trial's start to the last trial's
  end, i.e. without start-up;
- ``startup_s``: from the call to the first trial's start;
- ``workers``, ``workers_ready_s``: how many worker processes ran trials, and from the call until
  the last of them began evaluating its first trial (spawn or Ray start-up, imports, context).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from search.api import run_search  # noqa: E402
from search.run.budget import WORKER_ATTR, is_surplus  # noqa: E402
from search.config import ExperimentConfig, config_from_dict, load_config  # noqa: E402
from search.run.context import build_study_context, set_threads  # noqa: E402

PATHS = {  # name -> (parallel section, ray section, trial slots)
    "1-worker": ({"backend": "optuna", "workers": 1}, {}, 1),
    "2-workers": ({"backend": "optuna", "workers": 2}, {}, 2),
    "ray-2": ({"backend": "ray"}, {"num_cpus": 2, "cpus_per_trial": 1.0,
                                   "max_concurrent": 2}, 2),
}
TINY = {
    "threads": 0,
    "data": {"name": "synthetic", "options": {"samples": 240, "classes": 4}},
    "model": {"name": "cnn", "options": {"width": 4}},
    "dense": {"epochs": 3, "lr": 0.005},
    "finetune": {"epochs": 1, "lr": 0.002},
    "search": {"n_trials": 4, "baseline_sparsities": [0.5], "baseline_bits": [8]},
}


def base_config(tiny: bool, n_trials: int | None, output_dir: Path, threads: int = 0
                ) -> ExperimentConfig:
    config = config_from_dict(TINY) if tiny else load_config(None)
    search = config.search if n_trials is None else replace(config.search, n_trials=n_trials)
    return replace(config, output_dir=str(output_dir), search=search,
                   threads=threads or config.threads)


def path_config(base: ExperimentConfig, name: str, journal: bool = False) -> ExperimentConfig:
    parallel, ray, _ = PATHS[name]
    data = base.to_dict()
    data["study"] = "bench-" + name
    if journal:  # a journal file in the study folder instead of the SQLite default
        log = Path(base.output_dir).resolve() / data["study"] / "study.log"
        data["search"]["storage"] = f"journal:///{log}"
    data["parallel"] = parallel
    data["ray"] = {**data["ray"], **ray}
    return config_from_dict(data)


def measure(config: ExperimentConfig, slots: int, dense: Path) -> dict[str, float]:
    """Run one path from a fresh study folder holding the shared dense reference."""
    shutil.rmtree(config.study_dir, ignore_errors=True)
    config.study_dir.mkdir(parents=True)
    shutil.copy(dense, config.study_dir / "dense.pt")
    started_at = time.time()
    start = time.perf_counter()
    result = run_search(config, log=lambda _: None)
    wall = time.perf_counter() - start
    trials = [t for t in result.study.get_trials(deepcopy=False)   # what the budget counts
              if not is_surplus(t) and t.state.name in ("COMPLETE", "PRUNED")]
    evals = [float(t.user_attrs.get("eval_seconds", 0.0)) for t in trials]  # 0: reused twin
    first = min(t.datetime_start.timestamp() for t in trials)
    last = max(t.datetime_complete.timestamp() for t in trials)
    n = len(trials)
    # When each worker process began evaluating its first trial (its trials' end minus their
    # evaluation time: for Ray the stored start is when the driver asked, not when a worker ran).
    ready: dict[str, float] = {}
    for trial, seconds in zip(trials, evals):
        began = trial.datetime_complete.timestamp() - seconds
        worker = str(trial.user_attrs.get(WORKER_ATTR))
        ready[worker] = min(ready.get(worker, began), began)
    return {
        "trials": n,
        "wall_s": wall,
        "trials_per_hour": 3600.0 * n / wall,
        "eval_s": sum(evals) / n,
        "overhead_s": (slots * wall - sum(evals)) / n,
        "steady_overhead_s": (slots * (last - first) - sum(evals)) / n,
        "startup_s": first - started_at,
        "workers": len(ready),
        "workers_ready_s": max(ready.values()) - started_at,
    }


def run(tiny: bool, n_trials: int | None, output_dir: Path, names: list[str],
        journal: bool = False, threads: int = 0) -> dict:
    load_before = os.getloadavg()
    base = base_config(tiny, n_trials, output_dir, threads)
    # Train the dense reference once (all cores), outside every timing.
    dense_config = replace(base, study="bench-dense")
    set_threads(dense_config)
    build_study_context(dense_config, log=lambda _: None)
    dense = dense_config.study_dir / "dense.pt"
    results = {}
    for name in names:
        results[name] = measure(path_config(base, name, journal), PATHS[name][2], dense)
        print(f"{name}: {json.dumps({k: round(v, 3) for k, v in results[name].items()})}",
              flush=True)
    if "1-worker" in results:
        for values in results.values():
            values["speedup"] = values["trials_per_hour"] / results["1-worker"]["trials_per_hour"]
    return {"config": "tiny" if tiny else "default", "n_trials": base.search.n_trials,
            "storage": "journal" if journal else "sqlite", "threads": base.threads,
            "cores": os.cpu_count(), "load_avg_before": load_before, "paths": results,
            "load_avg_after": os.getloadavg()}


def format_table(report: dict) -> str:
    lines = [f"{report['config']} study, {report['n_trials']} trials, {report['storage']} storage, "
             f"{report['cores']} cores, "
             f"load average before/after: {report['load_avg_before'][0]:.2f} / "
             f"{report['load_avg_after'][0]:.2f}",
             f"{'path':<16}{'wall s':>8}{'trials/h':>10}{'speedup':>9}{'eval s':>8}"
             f"{'overhead s':>12}{'steady ovh s':>14}{'startup s':>11}{'workers ready s':>17}"]
    for name, v in report["paths"].items():
        lines.append(f"{name:<16}{v['wall_s']:>8.1f}{v['trials_per_hour']:>10.0f}"
                     f"{v.get('speedup', float('nan')):>9.2f}{v['eval_s']:>8.3f}"
                     f"{v['overhead_s']:>12.3f}{v['steady_overhead_s']:>14.3f}"
                     f"{v['startup_s']:>11.1f}{v['workers_ready_s']:>17.1f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="synthetic data, 4 trials (smoke test)")
    parser.add_argument("--n-trials", type=int, help="budget of every path (default: the study's)")
    parser.add_argument("--paths", default=",".join(PATHS),
                        help=f"comma-separated subset of: {', '.join(PATHS)}")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads per worker (default: cores / workers)")
    parser.add_argument("--journal", action="store_true",
                        help="journal-file storage instead of the SQLite default")
    parser.add_argument("--output-dir", help="where the study folders go (default: a temp folder)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.paths.split(",") if n.strip()]
    unknown = [n for n in names if n not in PATHS]
    if unknown:
        parser.error(f"--paths must name paths from {list(PATHS)}, got {unknown}")
    with tempfile.TemporaryDirectory(prefix="bench-parallel-") as tmp:
        report = run(args.tiny, args.n_trials, Path(args.output_dir or tmp), names, args.journal,
                     args.threads)
    print(format_table(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
