"""Search your own model on your own data from Python (the part you write is under 20 lines).

    python examples/custom_model_api.py

The model is any callable returning a fresh nn.Module; the data are torch Datasets (or
DataLoaders). No validation split given: it is carved from `train` with a seed; `test` is only
reported. The metric here is macro-F1 (a name, or any `metric(logits, targets) -> float`).
Set SPARSITY_SEARCH_SMOKE=1 for a seconds-long run (what CI does).
"""
import os

import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import TensorDataset

from search.api import run_search

# --- your data and your model ---------------------------------------------------------------
digits = load_digits()
x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
y = torch.tensor(digits.target)
train, test = TensorDataset(x[:1400], y[:1400]), TensorDataset(x[1400:], y[1400:])


def make_model() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(16 * 8 * 8, 64), nn.ReLU(), nn.Linear(64, 10))


budget = {"search": {"n_trials": 30}, "dense": {"epochs": 15}, "finetune": {"epochs": 2}}
if os.environ.get("SPARSITY_SEARCH_SMOKE"):
    budget = {"threads": 1, "cost": {"measure_latency": False},
              "search": {"n_trials": 2, "baseline_sparsities": [0.5], "baseline_bits": [8]},
              "dense": {"epochs": 1}, "finetune": {"epochs": 1}}

result = run_search(model=make_model, train=train, test=test, metric="f1_macro",
                    study="my_model", **budget)
print(result.front()[["trial", "accuracy", "test_accuracy", "flops", "size_bytes"]])
