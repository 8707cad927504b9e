"""Overhead of a trial in our framework against a bare PyTorch loop doing the same work.

Both sides fine-tune the same pruned candidates (magnitude masks at a few uniform sparsities,
8-bit per-channel fake quantization) from the same dense reference, for the same epochs on the
same in-memory data, and measure validation accuracy. Ours runs them as real trials of an Optuna
study (SQLite storage, callbacks, every metric, latency timing); the bare loop is the minimum a
person would write. Measured in one run, interleaved; the table prints the ratio.

    python benchmarks/overhead.py             # digits + built-in CNN, 8 candidates x 3 repeats
    python benchmarks/overhead.py --tiny      # smoke test
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from search.config import config_from_dict  # noqa: E402
from search.run.context import build_study_context, set_threads  # noqa: E402
from search.run.study import open_study
from search.run.trials import run_trials

sys.path.insert(0, str(Path(__file__).resolve().parent))
from table_output import save_and_print  # noqa: E402


def bare_trial(context, sparsity: float, bits: int, epochs: int, lr: float, seed: int) -> float:
    """Prune by magnitude, fine-tune with masks and fake quantization, return val accuracy."""
    torch.manual_seed(seed)
    model = context.model_factory()
    model.load_state_dict(context.dense_state)
    names = [layer.name for layer in context.layers if not layer.is_classifier]
    modules = dict(model.named_modules())
    masks = {}
    for name in names:
        weight = modules[name].weight.detach()
        k = int(round(sparsity * weight.numel()))
        mask = torch.ones(weight.numel(), dtype=torch.bool)
        mask[torch.argsort(weight.abs().reshape(-1))[:k]] = False
        masks[name] = mask.reshape(weight.shape)
        modules[name].weight.data.mul_(masks[name])
    qmax = 2 ** (bits - 1) - 1
    originals = {}

    def quantize_in_place():
        for module in (modules[n] for n in [l.name for l in context.layers]):
            w = module.weight.data
            originals[module] = w.clone()
            scale = w.reshape(w.shape[0], -1).abs().amax(1).clamp_min(1e-12) / qmax
            scale = scale.reshape(-1, *([1] * (w.dim() - 1)))
            w.copy_(torch.clamp(torch.round(w / scale), -qmax, qmax) * scale)

    def restore():
        for module, w in originals.items():
            module.weight.data.copy_(w)

    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    x, y = context.data.train.tensors
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), context.batch_size):
            idx = order[start:start + context.batch_size]
            quantize_in_place()                       # forward with quantized weights (STE)
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            restore()
            optimizer.step()
            for name in names:
                modules[name].weight.data.mul_(masks[name])
        scheduler.step()
    model.eval()
    with torch.no_grad():
        vx, vy = context.data.val.tensors
        return (model(vx).argmax(1) == vy).float().mean().item()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--candidates", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--out", default="benchmarks/results/overhead.csv")
    args = parser.parse_args(argv)
    if args.tiny:
        args.candidates, args.repeats, args.epochs = 2, 1, 1
    sparsities = [round(0.5 + 0.45 * i / max(1, args.candidates - 1), 3)
                  for i in range(args.candidates)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        base = {"output_dir": tmp, "threads": 1, "finetune": {"epochs": args.epochs},
                "space": {"bits": [8], "criteria": ["magnitude"],
                          "sparsity": {"scale": "linear", "step": 0.001, "high": 0.95}},
                "search": {"enqueue_dense": False, "baselines": ["uniform"],
                           "baseline_bits": [8], "baseline_sparsities": sparsities,
                           "n_trials": len(sparsities)}}
        if args.tiny:
            base.update({"data": {"name": "synthetic", "options": {"samples": 200}},
                         "dense": {"epochs": 2}})
        for repeat in range(args.repeats):
            config = config_from_dict({**base, "study": f"overhead-{repeat}"})
            set_threads(config)
            context, space = build_study_context(config, log=lambda _: None)
            lr = config.finetune.lr
            started = time.perf_counter()
            for s in sparsities:
                bare_trial(context, s, 8, args.epochs, lr, config.seed)
            bare = time.perf_counter() - started
            study = open_study(config, space)
            started = time.perf_counter()
            run_trials(study, space, context, config, log=lambda _: None)
            ours = time.perf_counter() - started
            rows.append({"repeat": repeat, "trials": len(sparsities),
                         "bare_ms_per_trial": 1000 * bare / len(sparsities),
                         "ours_ms_per_trial": 1000 * ours / len(sparsities),
                         "overhead": ours / bare - 1.0})
    table = pd.DataFrame(rows)
    save_and_print(table, args.out)
    print(f"\nmedian overhead of a trial in our framework vs the bare loop: "
          f"{100 * table['overhead'].median():.1f}% (target <= 10%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
