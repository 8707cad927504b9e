"""The composition root: config, studies, Pareto front, command line."""
from search.api import StudyResult, run_search
from search.config import ExperimentConfig, load_config
from search.pareto import pareto_front

__all__ = ["ExperimentConfig", "StudyResult", "load_config", "pareto_front", "run_search"]
