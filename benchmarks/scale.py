"""Scale: does the search's own cost per trial stay flat as the model and the study grow?

For each model (built-in CNN and MLP on 8x8 inputs; torchvision resnet18 and mobilenet_v2 on
32x32 synthetic inputs), in its own process (so peak memory is per model):

- layer discovery and space construction (once per study), the analytic cost model per
  candidate, one real trial (prune + 1 fine-tune epoch on 256 samples + evaluation);
- a long study of cheap real trials (``finetune.epochs: 0``, 64 samples, no latency or test
  evaluation) run by the real trial loop (``run_trials``: the study's TPE sampler, SQLite storage,
  budget, duplicates, progress): the **search overhead per trial** is the time between two trials'
  ends minus the trial's own evaluation (``eval_seconds``), i.e. sampling, storage reads and
  writes, bookkeeping. Reported as the median over trials 5-15 (``at_10``) and over the last 11
  (``at_end``), with the sampler's share of it at the same trials (Optuna's TPE, timed by a
  wrapper);
- peak resident memory.

    python benchmarks/scale.py                       # all models, 1,000-trial studies
    python benchmarks/scale.py --models cnn mobilenet_v2 --trials 300
    python benchmarks/scale.py --tiny                # smoke test (built-in CNN, 12 trials)
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from table_output import save_and_print  # noqa: E402

MODELS = {
    "cnn": {"model": {"name": "cnn"}, "size": 8},
    "mlp": {"model": {"name": "mlp"}, "size": 8},
    "resnet18": {"model": {"name": "torchvision:resnet18"}, "size": 32},
    "mobilenet_v2": {"model": {"name": "torchvision:mobilenet_v2"}, "size": 32},
}


class TimedSampler:
    """Wraps an Optuna sampler and adds up the time spent in it (every call goes through);
    ``per_trial``: the time of each trial, in the order trials were told (``after_trial``)."""

    def __init__(self, sampler):
        self.sampler = sampler
        self.seconds = 0.0
        self.per_trial: list[float] = []
        self._told = 0.0

    def __getattr__(self, name):
        target = getattr(self.sampler, name)
        if not callable(target):
            return target

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return target(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started
                if name == "after_trial":
                    self.per_trial.append(self.seconds - self._told)
                    self._told = self.seconds
        return timed


def config_for(name: str, tmp: str, study: str, finetune_epochs: int, samples: int,
               n_trials: int = 20):
    from search.config import config_from_dict

    spec = MODELS[name]
    return config_from_dict({
        "study": study, "output_dir": tmp, "threads": 1, "model": spec["model"],
        "data": {"name": "synthetic", "options": {"samples": samples, "classes": 10,
                                                  "size": spec["size"]}},
        "dense": {"epochs": 0}, "finetune": {"epochs": finetune_epochs},
        "cost": {"measure_latency": False, "measure_test_accuracy": finetune_epochs > 0},
        "search": {"n_trials": n_trials, "baselines": ["uniform"]}})


def one_trial(name: str, tmp: str, trials: int) -> dict:
    """Discovery, space, cost model and one real trial (1 epoch on 256 samples)."""
    import optuna

    from search.run.context import build_study_context
    from spaces.space import SearchSpace
    from trainers.discovery import discover_layers
    from trainers.trial import cost_metrics, evaluate_candidate

    config = config_for(name, tmp, "one", finetune_epochs=1, samples=400)
    context, _ = build_study_context(config, log=lambda _: None)
    context.data.train = torch_subset(context.data.train, 256)
    probe = context.model_factory()
    started = time.perf_counter()
    layers = discover_layers(probe, context.data.input_shape)
    discovery = time.perf_counter() - started
    started = time.perf_counter()
    space = SearchSpace(layers, config.space, seed=0)
    construction = time.perf_counter() - started
    draw = optuna.create_study(directions=["maximize", "minimize"],
                               sampler=optuna.samplers.RandomSampler(seed=0))   # in memory
    candidates = [space.suggest(draw.ask()) for _ in range(trials)]
    started = time.perf_counter()
    for candidate in candidates:
        cost_metrics(candidate, context)
    costs = (time.perf_counter() - started) / trials
    started = time.perf_counter()
    evaluate_candidate(space.uniform_candidate(0.5, 8), context)   # a valid candidate: trained
    return {"model": name, "layers": len(layers),
            "params_M": sum(layer.params for layer in layers) / 1e6,
            "discovery_ms": 1000 * discovery, "space_ms": 1000 * construction,
            "cost_model_ms_per_trial": 1000 * costs,
            "trial_s_1_epoch_256": time.perf_counter() - started}


def long_study(name: str, tmp: str, trials: int) -> dict:
    """Search overhead per trial near trial 10 and at the end of a ``trials``-trial study."""
    import optuna
    from optuna.trial import TrialState

    from search.run.context import build_study_context
    from search.run.study import open_study
    from search.run.trials import run_trials

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    config = config_for(name, tmp, "long", finetune_epochs=0, samples=64, n_trials=trials)
    context, space = build_study_context(config, log=lambda _: None)
    study = open_study(config, space)
    timed = TimedSampler(study.sampler)
    study.sampler = timed
    started = time.perf_counter()
    run_trials(study, space, context, config, log=lambda _: None)
    wall = time.perf_counter() - started
    done = sorted((t for t in study.get_trials(deepcopy=False)
                   if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)),
                  key=lambda t: t.datetime_complete)
    overhead = [(b.datetime_complete - a.datetime_complete).total_seconds()
                - float(b.user_attrs.get("eval_seconds", 0.0)) for a, b in zip(done, done[1:])]
    sampler = timed.per_trial[1:]     # aligned with ``overhead`` (both from the second trial)
    return {"study_trials": len(done), "study_wall_s": wall,
            "overhead_ms_at_10": 1000 * statistics.median(overhead[4:15] or overhead),
            "overhead_ms_at_end": 1000 * statistics.median(overhead[-11:]),
            "sampler_ms_at_10": 1000 * statistics.median(sampler[4:15] or sampler),
            "sampler_ms_at_end": 1000 * statistics.median(sampler[-11:]),
            "eval_ms_per_trial": 1000 * statistics.median(
                float(t.user_attrs.get("eval_seconds", 0.0)) for t in done)}


def measure(name: str, trials: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        row = one_trial(name, tmp, min(trials, 20))
        row.update(long_study(name, tmp, trials))
    row["peak_rss_MB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return row


def torch_subset(dataset, n: int):
    from torch.utils.data import TensorDataset

    x, y = dataset.tensors
    return TensorDataset(x[:n], y[:n])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--trials", type=int, default=1000,
                        help="trials of each model's long study (default 1000)")
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--out", default="benchmarks/results/scale.csv")
    args = parser.parse_args(argv)
    if args.trials < 12:
        parser.error(f"--trials must be >= 12 (overhead is read at trials 5-15), got {args.trials}")
    if args.one:
        print(json.dumps(measure(args.one, args.trials)))
        return 0
    if args.tiny:
        args.models, args.trials = ["cnn"], 12
    rows = []
    for name in args.models:
        proc = subprocess.run([sys.executable, __file__, "--one", name, "--trials", str(args.trials)],
                              capture_output=True, text=True, cwd=ROOT)
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            return proc.returncode
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    save_and_print(pd.DataFrame(rows), args.out, width=250)
    return 0


if __name__ == "__main__":
    sys.exit(main())
