"""What can be searched: pure data, no torch (layer descriptions, SearchSpace, Candidate)."""
from spaces.candidate import Candidate
from spaces.layers import LayerInfo
from spaces.settings import SpaceSettings
from spaces.space import SearchSpace
from spaces.sparsity_range import SparsityRange
from spaces.trial_result import TrialResult

__all__ = ["Candidate", "LayerInfo", "SearchSpace", "SpaceSettings", "SparsityRange", "TrialResult"]
