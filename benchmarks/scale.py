"""Scale: does the search's own cost per trial stay flat as the model grows?

For each model (built-in CNN and MLP on 8x8 digits-sized inputs; torchvision resnet18 and
mobilenet_v2 on 32x32 synthetic inputs) in its own process (so peak memory is per model):
layer discovery and space construction (once per study), the search's per-trial overhead (Optuna
ask + define-by-run suggest + storing the candidate and ~20 metrics in SQLite + tell), the analytic
cost model per candidate, one real trial (prune + 1 fine-tune epoch on 256 samples + evaluation),
and peak resident memory.

    python benchmarks/scale.py            # all models
    python benchmarks/scale.py --tiny     # smoke test (built-in CNN only, fewer trials)
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODELS = {
    "cnn": {"model": {"name": "cnn"}, "size": 8},
    "mlp": {"model": {"name": "mlp"}, "size": 8},
    "resnet18": {"model": {"name": "torchvision:resnet18"}, "size": 32},
    "mobilenet_v2": {"model": {"name": "torchvision:mobilenet_v2"}, "size": 32},
}


def measure(name: str, trials: int) -> dict:
    import optuna

    from search.config import config_from_dict
    from search.run.context import build_study_context
    from search.run.storage import open_storage
    from spaces.space import SearchSpace
    from trainers.discovery import discover_layers
    from trainers.trial import cost_metrics, evaluate_candidate

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = MODELS[name]
    with tempfile.TemporaryDirectory() as tmp:
        config = config_from_dict({
            "output_dir": tmp, "threads": 1, "model": spec["model"],
            "data": {"name": "synthetic", "options": {"samples": 400, "classes": 10,
                                                      "size": spec["size"]}},
            "dense": {"epochs": 0}, "finetune": {"epochs": 1},
            "cost": {"measure_latency": False}})
        context, _ = build_study_context(config, log=lambda _: None)
        context.data.train = torch_subset(context.data.train, 256)
        probe = context.model_factory()
        started = time.perf_counter()
        layers = discover_layers(probe, context.data.input_shape)
        discovery = time.perf_counter() - started
        started = time.perf_counter()
        space = SearchSpace(layers, config.space, seed=0)
        construction = time.perf_counter() - started
        study = optuna.create_study(directions=["maximize", "minimize", "minimize"],
                                    storage=open_storage(f"sqlite:///{tmp}/scale.db"),
                                    sampler=optuna.samplers.NSGAIISampler(seed=0))
        metric_names = [f"metric_{i}" for i in range(20)]
        started = time.perf_counter()
        candidates = []
        for _ in range(trials):
            trial = study.ask()
            candidate = space.suggest(trial)
            trial.set_user_attr("candidate", candidate.to_flat_dict())
            for metric in metric_names:
                trial.set_user_attr(metric, 1.0)
            study.tell(trial, [0.5, 1.0, 1.0])
            candidates.append(candidate)
        overhead = (time.perf_counter() - started) / trials
        started = time.perf_counter()
        for candidate in candidates:
            cost_metrics(candidate, context)
        costs = (time.perf_counter() - started) / trials
        started = time.perf_counter()
        evaluate_candidate(candidates[-1], context)
        trial_seconds = time.perf_counter() - started
    return {"model": name, "layers": len(layers), "params_M": sum(l.params for l in layers) / 1e6,
            "discovery_ms": 1000 * discovery, "space_ms": 1000 * construction,
            "search_overhead_ms_per_trial": 1000 * overhead,
            "cost_model_ms_per_trial": 1000 * costs, "trial_s_1_epoch_256": trial_seconds,
            "overhead_share": (overhead + costs) / trial_seconds,
            "peak_rss_MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def torch_subset(dataset, n: int):
    from torch.utils.data import TensorDataset

    x, y = dataset.tensors
    return TensorDataset(x[:n], y[:n])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--out", default="benchmarks/results/scale.csv")
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.one, args.trials)))
        return 0
    if args.tiny:
        args.models, args.trials = ["cnn"], 3
    rows = []
    for name in args.models:
        proc = subprocess.run([sys.executable, __file__, "--one", name, "--trials", str(args.trials)],
                              capture_output=True, text=True, cwd=ROOT, check=True)
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    table = pd.DataFrame(rows)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    pd.set_option("display.width", 200)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
