"""The names and settings the config reads from trainers/: torch-free, and equal to the registries."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from trainers.method_names import GRANULARITY_NAMES, SCHEDULE_NAMES
from trainers.pruning.granularity import GRANULARITIES
from trainers.schedules import SCHEDULES

ROOT = Path(__file__).resolve().parents[2]


def test_name_tables_list_the_registered_classes_in_order():
    assert tuple(GRANULARITIES) == GRANULARITY_NAMES
    assert tuple(SCHEDULES) == SCHEDULE_NAMES


def test_what_the_config_reads_imports_without_torch():
    """``search.config``, ``objectives`` and ``results`` (status, pareto) must not need torch."""
    code = "\n".join([
        "import sys",
        "from trainers.checkpoint import atomic_write_text",
        "from trainers.costs import METER_CHOICES, METRICS, LatencySettings, load_profile",
        "from trainers.costs.meters import DEFAULT_POWERCAP_ROOT",
        "from trainers.costs.metrics import SHORT_NATURE, metric_nature",
        "from trainers.data import DATASETS, DataSettings, is_known_data_name",
        "from trainers.device import DEVICE_PATTERN",
        "from trainers.method_names import GRANULARITY_NAMES, SCHEDULE_NAMES",
        "from trainers.models import MODELS, ModelSettings, is_known_model_name",
        "from trainers.pruning import CRITERIA, PruningSettings",
        "from trainers.rungs import StopCandidate",
        "from trainers.train_settings import TrainSettings",
        "import spaces",
        "load_profile(None)",
        "assert is_known_data_name('torchvision:MNIST') and is_known_model_name('cnn')",
        "assert CRITERIA['fpgm'].granularities == ('channel',)",
        "print('torch' in sys.modules)",
    ])
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
