"""The command line: ``sparsity-search run|worker|pareto|status|pick|export|report|sensitivity``."""
from search.cli.main import main

__all__ = ["main"]
