"""Analytic inference energy per sample (an estimate, labelled ``analytic``) from a hardware profile.

Rules (also in the README, "Cost model"):

- Arithmetic. A MAC runs at the wider of its weight and activation widths ``w``, ``a``:
  wider than 16 bits -> float32 multiply + float32 add; 9-16 bits -> float16 multiply + add;
  up to 8 bits -> integer: the 8x8-bit multiply energy scaled by ``w * a / 64`` (an array
  multiplier's area grows with the product of the widths) plus a 32-bit integer accumulate.
  Only surviving MACs count (a sparse kernel skips pruned weights). MACs outside the prunable layers
  run at float32, except the weight-free products (attention's Q K^T and attention x V): both of
  their operands are activations, so they run at the activation width, and no pruning removes
  them.
- Weight memory. Stored weight bits (surviving weights at their width, the sparsity pattern,
  quantization scales, plus the float32 parameters outside the prunable layers) cost ``bits / 32``
  of a 32-bit SRAM read once per sample. If the stored model is larger than the profile's
  ``sram_bytes`` it cannot stay on chip: it also streams from DRAM once per batch, i.e.
  ``bits / 32`` DRAM reads divided by the profile's ``batch_size``. A model that fits is loaded
  once and its DRAM cost amortises to zero.
- Activation memory. Every prunable layer reads its input and writes its output once per sample in
  SRAM at the activation width (writes cost as much as reads); element-wise layers (norms,
  activations, pooling) are taken as fused into the layer before them and cost nothing extra.
  Activations are assumed to fit on chip. A weight-free product reads its operands and writes its
  result once (for ``scaled_dot_product_attention``: Q, K, V and the output; the score matrix of a
  fused attention kernel stays in registers and is not counted); an explicit ``matmul`` of
  Q and K^T writes its scores, which the next product reads.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Mapping


from trainers.costs.basis import BasisLike, as_basis, kept_weights
from trainers.costs.size import FLOAT_BITS, layer_size_bits
from trainers.yaml_file import safe_load

PROFILE_DIR = Path(__file__).parent / "profiles"
DEFAULT_PROFILE = "horowitz45"


@dataclass(frozen=True)
class EnergyProfile:
    """Per-operation energies in picojoules plus the on-chip buffer size and inference batch size."""

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

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name != "name" and not (isinstance(value, (int, float)) and value > 0):
                raise ValueError(f"energy profile '{self.name}': {item.name} must be a number > 0, "
                                 f"got {value!r}")

    def mac_pj(self, weight_bits: int, act_bits: int) -> float:
        """Energy of one multiply-accumulate at the given operand widths (rule in module doc)."""
        width = max(weight_bits, act_bits)
        if width > 16:
            return self.fp32_mult_pj + self.fp32_add_pj
        if width > 8:
            return self.fp16_mult_pj + self.fp16_add_pj
        return self.int8_mult_pj * (weight_bits * act_bits) / 64.0 + self.int32_add_pj

    def read_pj(self, bits: float, *, dram: bool = False) -> float:
        """Energy to move ``bits`` bits through SRAM (or DRAM): linear in the bit count."""
        per_32 = self.dram_read_32b_pj if dram else self.sram_read_32b_pj
        return bits / 32.0 * per_32


def shipped_profiles() -> list[str]:
    """Names of the profiles that ship with the package (YAML files in ``profiles/``)."""
    return sorted(path.stem for path in PROFILE_DIR.glob("*.yaml"))


def load_profile(spec: str | Path | None = None) -> EnergyProfile:
    """A shipped profile by name (default ``horowitz45``) or a user's YAML file by path."""
    spec = DEFAULT_PROFILE if spec in (None, "") else spec
    source = PROFILE_DIR / f"{spec}.yaml" if str(spec) in shipped_profiles() else Path(spec)
    if not source.is_file():
        raise ValueError(f"cost.energy_profile must be one of {shipped_profiles()} or an existing "
                         f"YAML file, got '{spec}'")
    with open(source) as handle:
        data = safe_load(handle) or {}
    if not isinstance(data, dict):
        raise ValueError(f"energy profile '{source}' must be a mapping of keys to numbers")
    names = [item.name for item in fields(EnergyProfile)]
    missing = sorted(set(names) - set(data))
    unknown = sorted(set(data) - set(names))
    if missing or unknown:
        raise ValueError(f"energy profile '{source}': missing keys {missing}, unknown keys {unknown}")
    return EnergyProfile(**data)


@dataclass(frozen=True)
class EnergyBreakdown:
    """Energy of one inference by where it goes, in picojoules."""

    compute_pj: float
    weight_sram_pj: float
    weight_dram_pj: float
    activation_pj: float

    @property
    def total_uj(self) -> float:
        return (self.compute_pj + self.weight_sram_pj + self.weight_dram_pj
                + self.activation_pj) * 1e-6


def energy_breakdown(basis: BasisLike, sparsity: Mapping[str, float], bits: Mapping[str, int],
                     profile: EnergyProfile, *, activation_bits: int = FLOAT_BITS,
                     granularity: str = "unstructured") -> EnergyBreakdown:
    """Arithmetic, weight traffic and activation traffic of one inference (rules in module doc)."""
    basis = as_basis(basis)
    compute = ((basis.other_macs - basis.free_macs) * profile.mac_pj(FLOAT_BITS, activation_bits)
               + basis.free_macs * profile.mac_pj(activation_bits, activation_bits))
    stored_bits = basis.other_params * FLOAT_BITS
    activation_bits_moved = basis.free_elems * activation_bits
    for layer in basis.layers:
        layer_sparsity = sparsity.get(layer.name, 0.0)
        weight_bits = bits.get(layer.name, FLOAT_BITS)
        density = kept_weights(layer, layer_sparsity) / layer.params
        compute += layer.macs * density * profile.mac_pj(weight_bits, activation_bits)
        stored_bits += layer_size_bits(layer, layer_sparsity, weight_bits, granularity)
        activation_bits_moved += (layer.in_elems + layer.out_elems) * activation_bits
    on_chip = stored_bits / 8.0 <= profile.sram_bytes
    dram = 0.0 if on_chip else profile.read_pj(stored_bits, dram=True) / profile.batch_size
    return EnergyBreakdown(compute_pj=compute, weight_sram_pj=profile.read_pj(stored_bits),
                           weight_dram_pj=dram, activation_pj=profile.read_pj(activation_bits_moved))


def inference_energy_uj(basis: BasisLike, sparsity: Mapping[str, float], bits: Mapping[str, int],
                        profile: EnergyProfile, *, activation_bits: int = FLOAT_BITS,
                        granularity: str = "unstructured") -> float:
    """Estimated energy of one inference in microjoules."""
    basis = as_basis(basis)
    return energy_breakdown(basis, sparsity, bits, profile, activation_bits=activation_bits,
                            granularity=granularity).total_uj
