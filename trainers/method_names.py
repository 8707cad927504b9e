"""The granularity and schedule names a config may list, readable without torch.

Their classes register under these names in ``trainers.pruning.granularity.GRANULARITIES`` and
``trainers.schedules.SCHEDULES`` (a test holds the registries and this table equal); criteria are
read from their own registry, ``trainers.pruning.criteria.CRITERIA``, which needs no torch either.
"""
from __future__ import annotations

GRANULARITY_NAMES = ("unstructured", "channel", "n:m")
SCHEDULE_NAMES = ("oneshot", "gradual", "during_training")
