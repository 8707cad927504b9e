"""What can be searched: pure data, no torch (layer descriptions, SearchSpace, Candidate)."""
from spaces.candidate import Candidate
from spaces.layers import LayerInfo
from spaces.result import TrialResult
from spaces.space import SearchSpace, SpaceSettings, SparsityRange

__all__ = ["Candidate", "LayerInfo", "SearchSpace", "SpaceSettings", "SparsityRange", "TrialResult"]
