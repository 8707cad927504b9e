"""Data sets by name. ``load_data(settings)`` returns a ``DataBundle`` (see ``catalog``).

Names are imported from their modules on first use (``trainers.lazy``): ``DATASETS``,
``DataSettings`` and ``is_known_data_name`` need no torch.
"""
from trainers.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "bundle": ["DataBundle"],
    "catalog": ["DATASETS", "is_known_data_name", "load_data"],
    "settings": ["DataSettings"],
    "splits": ["bundle_from_splits", "inner_dataset", "prediction_count"],
})
