"""Analytic inference energy per sample (an estimate) from a per-operation hardware profile.

Rules (stated in the README):
- Arithmetic runs at the wider of the weight and activation widths. 32 bits: float32 multiply and
  add. 16 bits: float16. <= 8 bits: integer; multiply energy scales with the product of the operand
  widths from the 8x8-bit figure, accumulation is a 32-bit integer add.
- Memory: a weight costs ``bits / 32`` of a 32-bit read. Stored weights (plus the sparsity pattern)
  that fit in ``sram_bytes`` are read from SRAM once per sample; otherwise they also stream from DRAM
  once per batch (amortised over ``batch_size``). Input and output activations of every layer are
  read / written in SRAM at the activation width. Only surviving (nonzero) MACs are counted.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import yaml

from spaces.layers import LayerInfo
from trainers.costs.size import layer_size_bits

PROFILE_DIR = Path(__file__).parent / "profiles"


@dataclass(frozen=True)
class EnergyProfile:
    name: str
    fp32_mult_pj: float
    fp32_add_pj: float
    fp16_mult_pj: float
    fp16_add_pj: float
    int8_mult_pj: float
    int8_add_pj: float
    int32_add_pj: float
    sram_read_32b_pj: float
    dram_read_32b_pj: float
    sram_bytes: int
    batch_size: int

    def mac_pj(self, weight_bits: int, act_bits: int) -> float:
        width = max(weight_bits, act_bits)
        if width >= 32:
            return self.fp32_mult_pj + self.fp32_add_pj
        if width > 8:
            return self.fp16_mult_pj + self.fp16_add_pj
        return self.int8_mult_pj * (weight_bits * act_bits) / 64.0 + self.int32_add_pj


def load_profile(path: str | Path | None = None) -> EnergyProfile:
    """Load a profile YAML (default: Horowitz 45 nm shipped with the package)."""
    source = Path(path) if path else PROFILE_DIR / "horowitz45.yaml"
    if not source.is_file():
        raise ValueError(f"cost.energy_profile must be an existing YAML file, got '{source}'")
    with open(source) as handle:
        data = yaml.safe_load(handle)
    fields = EnergyProfile.__dataclass_fields__
    missing = sorted(set(fields) - set(data or {}))
    if missing:
        raise ValueError(f"energy profile '{source}' is missing keys {missing}")
    return EnergyProfile(**{k: data[k] for k in fields})


def inference_energy_uj(layers: Sequence[LayerInfo], sparsity: Mapping[str, float],
                        bits: Mapping[str, int], profile: EnergyProfile,
                        activation_bits: int = 32) -> float:
    """Estimated energy of one inference in microjoules (see module docstring for the rules)."""
    stored_bits = {layer.name: layer_size_bits(layer, sparsity.get(layer.name, 0.0),
                                               bits.get(layer.name, 32)) for layer in layers}
    fits_on_chip = sum(stored_bits.values()) / 8.0 <= profile.sram_bytes
    total_pj = 0.0
    for layer in layers:
        wbits = bits.get(layer.name, 32)
        density = 1.0 - sparsity.get(layer.name, 0.0)
        total_pj += layer.macs * density * profile.mac_pj(wbits, activation_bits)
        reads_32 = stored_bits[layer.name] / 32.0
        total_pj += reads_32 * profile.sram_read_32b_pj
        if not fits_on_chip:
            total_pj += reads_32 * profile.dram_read_32b_pj / profile.batch_size
        total_pj += ((layer.in_elems + layer.out_elems) * activation_bits / 32.0
                     * profile.sram_read_32b_pj)
    return total_pj * 1e-6
