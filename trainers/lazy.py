"""Lazy package exports: a package's public names, imported from their modules on first use.

A package ``__init__`` that imported every module eagerly would pull torch in for a torch-free
name (``from trainers.costs import METRICS`` reads a table; ``search.config`` and the commands that
only read a study need no torch). The same map as Ray Tune's lazy search-algorithm imports:
``__getattr__`` imports the defining module when a name is first asked for.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable, Mapping, Sequence


def lazy_exports(package: str, modules: Mapping[str, Sequence[str]]
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """``(__getattr__, __dir__, __all__)`` for ``package``.

    ``modules`` maps a module (relative to ``package``) to the public names it defines.
    """
    where = {name: module for module, names in modules.items() for name in names}

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module '{package}' has no attribute '{name}'")
        return getattr(importlib.import_module(f"{package}.{where[name]}"), name)

    def __dir__() -> list[str]:
        return sorted(where)

    return __getattr__, __dir__, sorted(where)
