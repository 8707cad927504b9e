"""Models by name. ``build_model(settings, input_shape, num_classes)`` returns an ``nn.Module``.

Names are imported from their modules on first use (``trainers.lazy``): ``MODELS``,
``ModelSettings`` and ``is_known_model_name`` need no torch (see ``catalog``).
"""
from trainers.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "build": ["build_model"],
    "builtin": ["MLP", "SmallCNN"],
    "catalog": ["MODELS", "is_known_model_name"],
    "settings": ["ModelSettings"],
})
