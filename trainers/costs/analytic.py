"""All analytic cost metrics of one compressed model, from its cost basis, in one call."""
from __future__ import annotations

from typing import Mapping

from trainers.costs.basis import CostBasis
from trainers.costs.bops import bit_operations
from trainers.costs.energy import EnergyProfile, inference_energy_uj
from trainers.costs.flops import dense_flops, effective_flops
from trainers.costs.size import model_size_bytes, nonzero_params


def analytic_costs(basis: CostBasis, sparsity: Mapping[str, float], bits: Mapping[str, int],
                   profile: EnergyProfile, *, activation_bits: int = 32,
                   granularity: str = "unstructured") -> dict[str, float]:
    """``flops_dense``, ``flops``, ``bops``, ``params_nonzero``, ``size_bytes``, ``energy_uj``.

    ``sparsity`` applies on top of ``basis`` (per-weight masks); for channel pruning pass the basis
    of the physically smaller model and an empty ``sparsity``.
    """
    return {
        "flops_dense": float(dense_flops(basis)),
        "flops": effective_flops(basis, sparsity=sparsity),
        "bops": bit_operations(basis, sparsity, bits, activation_bits),
        "params_nonzero": float(nonzero_params(basis, sparsity)),
        "size_bytes": model_size_bytes(basis, sparsity, bits, granularity=granularity),
        "energy_uj": inference_energy_uj(basis, sparsity, bits, profile,
                                         activation_bits=activation_bits, granularity=granularity),
    }
