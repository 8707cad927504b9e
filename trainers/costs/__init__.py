"""Cost model: FLOPs, bit-operations, size, analytic inference energy, latency, training energy.

Counted metrics (FLOPs, bit-operations, parameters, bytes) are exact for the stated convention;
inference energy is an analytic estimate from a hardware profile; latency and training energy are
measured (training energy falls back to a labelled estimate where no counter exists).
"""
from trainers.costs.analytic import analytic_costs
from trainers.costs.basis import CostBasis, cost_basis, kept_weights
from trainers.costs.bops import bit_operations
from trainers.costs.energy import (EnergyBreakdown, EnergyProfile, energy_breakdown,
                                   inference_energy_uj, load_profile, shipped_profiles)
from trainers.costs.flops import FLOPS_PER_MAC, count_flops, dense_flops, effective_flops
from trainers.costs.latency import LatencySettings, inference_copy, measure_latency_ms
from trainers.costs.meters import (METER_CHOICES, METERS, EnergyMeter, EnergyReading,
                                   MeterUnavailable, make_meter)
from trainers.costs.metrics import METRICS, metric_label, metric_nature
from trainers.costs.size import model_size_bytes, nonzero_params, pattern_bits

__all__ = ["FLOPS_PER_MAC", "METER_CHOICES", "METERS", "METRICS", "CostBasis", "EnergyBreakdown",
           "EnergyMeter", "EnergyProfile", "EnergyReading", "LatencySettings", "MeterUnavailable",
           "analytic_costs", "bit_operations", "cost_basis", "count_flops", "dense_flops",
           "effective_flops", "energy_breakdown", "inference_copy", "inference_energy_uj",
           "kept_weights", "load_profile", "make_meter", "measure_latency_ms", "metric_label",
           "metric_nature", "model_size_bytes", "nonzero_params", "pattern_bits",
           "shipped_profiles"]
