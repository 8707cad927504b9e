"""Shared test helpers: a tiny, fast config on synthetic data."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def tiny_config_dict(tmp_path: Path, **search: object) -> dict:
    """A study on synthetic 8x8 data that trains in about a second per trial."""
    return {
        "study": "tiny",
        "output_dir": str(tmp_path / "runs"),
        "threads": 1,
        "data": {"name": "synthetic", "options": {"samples": 240, "classes": 4}},
        "model": {"name": "cnn", "options": {"width": 4}},
        "dense": {"epochs": 3, "lr": 0.005},
        "finetune": {"epochs": 1, "lr": 0.002},
        "search": {"n_trials": 4, "baseline_sparsities": [0.5], "baseline_bits": [8], **search},
    }


def cli_env() -> dict:
    """Environment for running ``python -m search`` from the repo without an install."""
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT)}


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "search", *args]


@pytest.fixture
def tiny_config(tmp_path):
    from search.config import config_from_dict

    return config_from_dict(tiny_config_dict(tmp_path))
