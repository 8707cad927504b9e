"""Cost model: FLOPs, size, analytic inference energy, training-energy meters."""
from trainers.costs.energy import EnergyProfile, inference_energy_uj, load_profile
from trainers.costs.flops import FLOPS_PER_MAC, dense_flops, effective_flops
from trainers.costs.meters import EnergyMeter, make_meter
from trainers.costs.size import model_size_bytes, nonzero_params, pattern_bits

__all__ = ["FLOPS_PER_MAC", "EnergyMeter", "EnergyProfile", "dense_flops", "effective_flops",
           "inference_energy_uj", "load_profile", "make_meter", "model_size_bytes",
           "nonzero_params", "pattern_bits"]
