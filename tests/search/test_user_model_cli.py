"""A user's model and data in their own module, named by ``module:callable`` in a config and
searched end to end through the command line."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]

USER_MODULE = textwrap.dedent("""
    import torch
    from torch import nn
    from torch.utils.data import TensorDataset

    class TinyNet(nn.Module):
        def __init__(self, in_channels, num_classes, width=4):
            super().__init__()
            self.stem = nn.Conv2d(in_channels, width, 3, padding=1)
            self.head = nn.Linear(width * 36, num_classes)

        def forward(self, x):
            return self.head(torch.relu(self.stem(x)).flatten(1))

    def make_net(in_channels, num_classes, width=4):
        return TinyNet(in_channels, num_classes, width)

    def make_data(samples=90, seed=0):
        gen = torch.Generator().manual_seed(seed)
        centres = torch.randn(3, 2, 6, 6, generator=gen)
        def part(n):
            y = torch.arange(n) % 3
            return TensorDataset(centres[y] + 0.5 * torch.randn(n, 2, 6, 6, generator=gen), y)
        return part(samples), part(30)
""")


def run_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run([sys.executable, "-m", "search", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def write_config(folder: Path, **changes) -> Path:
    config = {
        "study": "mine", "threads": 1, "device": "cpu", "cost": {"measure_latency": False},
        "model": {"name": "usernet_byo:make_net", "options": {"width": 6}},
        "data": {"name": "usernet_byo:make_data", "options": {"samples": 90}},
        "dense": {"epochs": 2, "lr": 0.01}, "finetune": {"epochs": 1},
        "space": {"bits": [8, 32]},
        "search": {"n_trials": 3, "baseline_sparsities": [0.5], "baseline_bits": [8]},
        **changes,
    }
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.slow
def test_user_module_searched_end_to_end_from_a_config(tmp_path):
    (tmp_path / "usernet_byo.py").write_text(USER_MODULE)
    config = write_config(tmp_path)
    done = run_cli(["run", str(config)], cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Pareto front of study 'mine'" in done.stdout
    trials = pd.read_csv(tmp_path / "runs" / "mine" / "trials.csv")
    assert len(trials) == 3 and set(trials["state"]) == {"COMPLETE"}
    # The user's layers (width 6 from the options, 2 input channels from the data) were searched.
    assert {"sparsity.stem", "bits.head"} <= set(trials.columns)
    saved = yaml.safe_load((tmp_path / "runs" / "mine" / "config.yaml").read_text())
    assert saved["model"]["name"] == "usernet_byo:make_net"


@pytest.fixture
def in_user_folder(tmp_path, monkeypatch):
    """The current folder holds the user's module (found there even without PYTHONPATH)."""
    (tmp_path / "usernet_byo.py").write_text(USER_MODULE)
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    sys.modules.pop("usernet_byo", None)


@pytest.mark.parametrize("changes,message", [
    ({"model": {"name": "usernet_byo:make_nett"}},
     "model factory 'usernet_byo:make_nett': module 'usernet_byo' has no attribute 'make_nett'; "
     "callables there: ['TensorDataset', 'TinyNet', 'make_data', 'make_net']"),
    ({"model": {"name": "usernet_byo:make_net", "options": {"depth": 2}}},
     "model factory 'usernet_byo:make_net' cannot be called with options ['depth']"),
    ({"data": {"name": "torchvision:MNIST", "root": "mnist"}},
     "data.root 'mnist' has no MNIST data (expected <root>/MNIST/raw/train-images-idx3-ubyte"),
    ({"model": "torchvision:resnet19"}, "model.name must be one of"),
    ({"data": "torchvision:SVHN"}, "data.name must be one of"),
    ({"device": "gpu"}, "device must be one of auto, cpu, cuda, cuda:N, mps; got 'gpu'"),
    ({"data": "digits"}, "model 'usernet_byo:make_net' failed on one input of the data's shape "
                         "[1, 8, 8] (RuntimeError: mat1 and mat2 shapes cannot be multiplied"),
])
def test_cli_errors_for_user_names_exit_2_with_one_line(in_user_folder, capsys, changes,
                                                        message):
    from search.cli.main import main

    assert main(["run", str(write_config(in_user_folder, **changes))]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1
    assert not (in_user_folder / "mnist").exists()          # nothing was downloaded
