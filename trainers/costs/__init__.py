"""Cost model: FLOPs, bit-operations, size, analytic inference energy, latency, training energy.

Counted metrics (FLOPs, bit-operations, parameters, bytes) are exact for the stated convention;
inference energy is an analytic estimate from a hardware profile; latency and training energy are
measured (training energy falls back to a labelled estimate where no counter exists).

Names are imported from their modules on first use (``trainers.lazy``): the tables and settings
(``METRICS``, ``METER_CHOICES``, ``LatencySettings``, ``load_profile``) need no torch.
"""
from trainers.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "analytic": ["analytic_costs"],
    "basis": ["CostBasis", "kept_weights"],
    "bops": ["bit_operations"],
    "energy": ["EnergyBreakdown", "EnergyProfile", "energy_breakdown", "inference_energy_uj",
               "load_profile", "shipped_profiles"],
    "flops": ["FLOPS_PER_MAC", "count_flops", "dense_flops", "effective_flops"],
    "latency": ["inference_copy", "measure_latency_ms"],
    "latency_settings": ["LatencySettings"],
    "meter_base": ["EnergyMeter", "EnergyReading", "MeterUnavailable"],
    "meters": ["METER_CHOICES", "METERS", "make_meter"],
    "metrics": ["METRICS", "metric_label", "metric_nature"],
    "model_basis": ["cost_basis"],
    "size": ["model_size_bytes", "nonzero_params", "pattern_bits"],
})
