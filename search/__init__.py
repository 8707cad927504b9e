"""The composition root: config, running a study, deciding from it, the command line.

Names are imported on first use, so ``import search`` (and ``sparsity-search --help``) loads no
torch: ``run_search`` pulls in the training side, reading a study does not.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ExperimentConfig": "search.config",
    "load_config": "search.config",
    "StudyResult": "search.study_result",
    "open_existing": "search.study_result",
    "run_search": "search.api",
    "pareto_front": "search.pareto",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'search' has no attribute '{name}'")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
