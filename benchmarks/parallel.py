"""Benchmark: one study, same budget, run by 1 local worker, 2 local workers, Ray (2 at once) on a
local runtime, and Ray on a two-node cluster (one trial per node at once).

    python benchmarks/parallel.py            # the default study (digits + CNN, 60 trials)
    python benchmarks/parallel.py --tiny     # seconds-long smoke run (tests/benchmarks)
    python benchmarks/parallel.py --postgres postgresql+psycopg://user@host/db   # PostgreSQL storage
    python benchmarks/parallel.py --paths 1-worker,ray-2-nodes --two-nodes     # + a 2-node cluster

Storage: SQLite in each study folder by default, ``--journal`` a journal file, ``--postgres URL``
a PostgreSQL database (each path's study is deleted from it first). The ``ray-2-nodes`` path joins
``--address HOST:PORT``, or with ``--two-nodes`` a head and a second node (1 CPU each) that the
script starts on this machine with ``ray start`` and stops by pid at the end.

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
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Iterator

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import optuna  # noqa: E402

from search.api import run_search  # noqa: E402
from search.run.budget import WORKER_ATTR, is_surplus  # noqa: E402
from search.config import ExperimentConfig, config_from_dict, load_config  # noqa: E402
from search.run.context import build_study_context, set_threads  # noqa: E402

PATHS = {  # name -> (parallel section, ray section, trial slots)
    "1-worker": ({"backend": "optuna", "workers": 1}, {}, 1),
    "2-workers": ({"backend": "optuna", "workers": 2}, {}, 2),
    "ray-2": ({"backend": "ray"}, {"num_cpus": 2, "cpus_per_trial": 1.0,
                                   "max_concurrent": 2}, 2),
    # a cluster of two nodes with 1 CPU each (its address is given at run time)
    "ray-2-nodes": ({"backend": "ray"}, {"cpus_per_trial": 1.0, "max_concurrent": 2}, 2),
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


def path_config(base: ExperimentConfig, name: str, journal: bool = False,
                postgres: str | None = None, address: str | None = None) -> ExperimentConfig:
    parallel, ray, _ = PATHS[name]
    data = base.to_dict()
    data["study"] = "bench-" + name
    if journal:  # a journal file in the study folder instead of the SQLite default
        log = Path(base.output_dir).resolve() / data["study"] / "study.log"
        data["search"]["storage"] = f"journal:///{log}"
    elif postgres:
        data["search"]["storage"] = postgres
    data["parallel"] = parallel
    data["ray"] = {**data["ray"], **ray}
    if name == "ray-2-nodes":
        data["ray"]["address"] = address or "127.0.0.1:6380"
    return config_from_dict(data)


def storage_name(journal: bool, postgres: str | None) -> str:
    return "journal" if journal else "postgresql" if postgres else "sqlite"


@contextmanager
def two_local_nodes() -> Iterator[str]:
    """A head and a second node on this machine (1 CPU each, ``ray start``); yields the address;
    every process of both is stopped by pid at the end (the test helpers do the work)."""
    from tests.ray_processes import free_port, start_node, stop_ray_processes

    root = Path(os.environ.get("RAY_TMPDIR") or tempfile.gettempdir()) / f"bench-{os.getpid()}"
    port = free_port()
    try:
        start_node(root / "head", cpus=1, head_port=port, cluster=True)
        start_node(root / "node2", cpus=1, address=f"127.0.0.1:{port}",
                   resources={"node2": 1}, cluster=True)
        yield f"127.0.0.1:{port}"
    finally:
        for node in ("node2", "head"):
            stop_ray_processes(root / node)
        shutil.rmtree(root, ignore_errors=True)


def measure(config: ExperimentConfig, slots: int, dense: Path) -> dict[str, float]:
    """Run one path from a fresh study folder holding the shared dense reference."""
    shutil.rmtree(config.study_dir, ignore_errors=True)
    if config.search.storage and "://" in config.search.storage and \
            not config.search.storage.startswith(("journal:", "sqlite:")):
        try:                       # an RDB server keeps studies: start this path from zero
            optuna.delete_study(study_name=config.study, storage=config.search.storage)
        except KeyError:
            pass
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
        "busy": sum(evals) / (slots * wall),    # share of the slots' wall time spent evaluating
        "steady_overhead_s": (slots * (last - first) - sum(evals)) / n,
        "startup_s": first - started_at,
        "workers": len(ready),
        "workers_ready_s": max(ready.values()) - started_at,
    }


def run(tiny: bool, n_trials: int | None, output_dir: Path, names: list[str],
        journal: bool = False, threads: int = 0, postgres: str | None = None,
        address: str | None = None, repeats: int = 1) -> dict:
    """Every path ``repeats`` times, in rounds (each round runs every path once, so a round's
    ratios are measured side by side); per path the median of each figure over the rounds, and
    ``speedup`` the median of the rounds' own ratios (with their range)."""
    load_before = os.getloadavg()
    base = base_config(tiny, n_trials, output_dir, threads)
    # Train the dense reference once (all cores), outside every timing.
    dense_config = replace(base, study="bench-dense")
    set_threads(dense_config)
    build_study_context(dense_config, log=lambda _: None)
    dense = dense_config.study_dir / "dense.pt"
    rounds: list[dict[str, dict[str, float]]] = []
    for round_ in range(repeats):
        measured = {}
        for name in names:
            config = path_config(base, name, journal, postgres, address)
            measured[name] = measure(config, PATHS[name][2], dense)
            print(f"round {round_ + 1}/{repeats} {name}: "
                  f"{json.dumps({k: round(v, 3) for k, v in measured[name].items()})}",
                  flush=True)
        if "1-worker" in measured:
            for values in measured.values():
                values["speedup"] = (values["trials_per_hour"]
                                     / measured["1-worker"]["trials_per_hour"])
        rounds.append(measured)
    results = {name: {key: statistics.median(r[name][key] for r in rounds)
                      for key in rounds[0][name]} for name in names}
    for name, values in results.items():
        if "speedup" in values:
            ratios = [r[name]["speedup"] for r in rounds]
            values["speedup_min"], values["speedup_max"] = min(ratios), max(ratios)
    return {"config": "tiny" if tiny else "default", "n_trials": base.search.n_trials,
            "storage": storage_name(journal, postgres), "threads": base.threads,
            "cores": os.cpu_count(), "load_avg_before": load_before, "paths": results,
            "repeats": repeats, "rounds": rounds, "load_avg_after": os.getloadavg()}


def format_table(report: dict) -> str:
    repeats = report.get("repeats", 1)
    lines = [f"{report['config']} study, {report['n_trials']} trials, {report['storage']} storage, "
             f"{report['cores']} cores, "
             + (f"median of {repeats} rounds (speedup: median of the rounds' ratios, range), "
                if repeats > 1 else "")
             + f"load average before/after: {report['load_avg_before'][0]:.2f} / "
             f"{report['load_avg_after'][0]:.2f}",
             f"{'path':<16}{'wall s':>8}{'trials/h':>10}{'speedup':>9}{'range':>12}{'eval s':>8}"
             f"{'busy':>6}{'overhead s':>12}{'steady ovh s':>14}{'startup s':>11}"
             f"{'workers ready s':>17}"]
    for name, v in report["paths"].items():
        spread = (f"{v['speedup_min']:.2f}-{v['speedup_max']:.2f}" if "speedup_min" in v
                  else "")
        lines.append(f"{name:<16}{v['wall_s']:>8.1f}{v['trials_per_hour']:>10.0f}"
                     f"{v.get('speedup', float('nan')):>9.2f}{spread:>12}{v['eval_s']:>8.3f}"
                     f"{v.get('busy', float('nan')):>6.0%}{v['overhead_s']:>12.3f}{v['steady_overhead_s']:>14.3f}"
                     f"{v['startup_s']:>11.1f}{v['workers_ready_s']:>17.1f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="synthetic data, 4 trials (smoke test)")
    parser.add_argument("--n-trials", type=int, help="budget of every path (default: the study's)")
    parser.add_argument("--paths", help=f"comma-separated subset of: {', '.join(PATHS)} "
                        "(default: all; ray-2-nodes only with --two-nodes or --address)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads per worker (default: cores / workers)")
    parser.add_argument("--journal", action="store_true",
                        help="journal-file storage instead of the SQLite default")
    parser.add_argument("--postgres", metavar="URL",
                        help="a PostgreSQL database as the storage of every path")
    parser.add_argument("--address", help="the Ray cluster of the ray-2-nodes path (HOST:PORT)")
    parser.add_argument("--two-nodes", action="store_true",
                        help="start a head and a second node on this machine for ray-2-nodes")
    parser.add_argument("--repeats", type=int, default=1,
                        help="rounds of every path (medians; the machine's speed drifts by "
                             "10-25%% between runs of the same study)")
    parser.add_argument("--output-dir", help="where the study folders go (default: a temp folder)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.paths is None:   # every path this machine can run as asked
        args.paths = ",".join(p for p in PATHS if p != "ray-2-nodes"
                              or args.two_nodes or args.address)
    names = [n.strip() for n in args.paths.split(",") if n.strip()]
    unknown = [n for n in names if n not in PATHS]
    if unknown:
        parser.error(f"--paths must name paths from {list(PATHS)}, got {unknown}")
    if "ray-2-nodes" in names and not (args.address or args.two_nodes):
        parser.error("the ray-2-nodes path needs --address HOST:PORT or --two-nodes")
    with tempfile.TemporaryDirectory(prefix="bench-parallel-") as tmp, ExitStack() as stack:
        address = stack.enter_context(two_local_nodes()) if args.two_nodes else args.address
        report = run(args.tiny, args.n_trials, Path(args.output_dir or tmp), names, args.journal,
                     args.threads, args.postgres, address, max(1, args.repeats))
    print(format_table(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
