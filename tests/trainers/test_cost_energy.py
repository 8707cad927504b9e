"""Analytic inference energy: a hand-built two-layer model computed by hand from the profile."""
from __future__ import annotations

import pytest
import yaml
from torch import nn

from search.config import config_from_dict
from search.schema import ConfigError
from trainers.costs import (cost_basis, energy_breakdown, inference_energy_uj, load_profile,
                            shipped_profiles)
from trainers.costs.energy import PROFILE_DIR

# fc1: Linear(4, 3) no bias -> ReLU -> fc2: Linear(3, 2) no bias
SPARSITY = {"fc1": 0.5, "fc2": 0.0}    # fc1 keeps 6 of 12 weights
BITS = {"fc1": 8, "fc2": 32}


def two_layer_basis():
    model = nn.Sequential()
    model.add_module("fc1", nn.Linear(4, 3, bias=False))
    model.add_module("act", nn.ReLU())
    model.add_module("fc2", nn.Linear(3, 2, bias=False))
    return cost_basis(model, (4,))


def write_profile(tmp_path, **changes) -> str:
    data = yaml.safe_load((PROFILE_DIR / "horowitz45.yaml").read_text())
    data.update(changes)
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_two_layer_energy_by_hand_on_chip():
    profile = load_profile()          # Horowitz 45 nm
    # Arithmetic, 8-bit activations:
    #   fc1 8x8-bit integer MACs: 0.2 pJ x 64/64 + 0.1 pJ (32-bit add) = 0.3 pJ; 6 surviving MACs
    #   fc2 32-bit weights -> float32: 3.7 + 0.9 = 4.6 pJ; 6 MACs
    compute = 6 * 0.3 + 6 * 4.6
    # Stored weights: fc1 6 x 8 bits + pattern min(12 bitmask, 6 x 4 index) + 3 scales x 32 = 156;
    #   fc2 6 x 32 = 192; 348 bits fit in SRAM: read once per sample at 5 pJ per 32 bits.
    weights = 348 / 32 * 5.0
    # Activations: fc1 reads 4, writes 3; fc2 reads 3, writes 2: 12 x 8 bits through SRAM.
    activations = 12 * 8 / 32 * 5.0
    breakdown = energy_breakdown(two_layer_basis(), SPARSITY, BITS, profile, activation_bits=8)
    assert breakdown.compute_pj == pytest.approx(compute)
    assert breakdown.weight_sram_pj == pytest.approx(weights)
    assert breakdown.weight_dram_pj == 0.0
    assert breakdown.activation_pj == pytest.approx(activations)
    total_uj = (compute + weights + activations) * 1e-6
    assert inference_energy_uj(two_layer_basis(), SPARSITY, BITS, profile,
                               activation_bits=8) == pytest.approx(total_uj)
    assert total_uj == pytest.approx(98.775e-6)


def test_weights_that_do_not_fit_on_chip_stream_from_dram_once_per_batch(tmp_path):
    profile = load_profile(write_profile(tmp_path, sram_bytes=16, batch_size=4))
    on_chip = inference_energy_uj(two_layer_basis(), SPARSITY, BITS, load_profile(),
                                  activation_bits=8)
    breakdown = energy_breakdown(two_layer_basis(), SPARSITY, BITS, profile, activation_bits=8)
    assert breakdown.weight_dram_pj == pytest.approx(348 / 32 * 640.0 / 4)
    assert breakdown.total_uj == pytest.approx(on_chip + 1740e-6)


@pytest.mark.parametrize("weight_bits, act_bits, expected_pj", [
    (32, 32, 3.7 + 0.9),     # float32
    (20, 8, 3.7 + 0.9),      # wider than 16 bits runs in float32
    (16, 8, 1.1 + 0.4),      # float16
    (4, 8, 0.2 * 32 / 64 + 0.1),
    (2, 4, 0.2 * 8 / 64 + 0.1),
])
def test_mac_energy_rule_for_bit_widths(weight_bits, act_bits, expected_pj):
    assert load_profile().mac_pj(weight_bits, act_bits) == pytest.approx(expected_pj)


def test_sparsity_and_quantization_lower_energy():
    basis = two_layer_basis()
    profile = load_profile()
    dense = inference_energy_uj(basis, {}, {}, profile)
    assert inference_energy_uj(basis, {"fc1": 0.5}, {}, profile) < dense
    assert inference_energy_uj(basis, {}, {"fc1": 8, "fc2": 8}, profile, activation_bits=8) < dense


def test_profile_by_name_path_and_config(tmp_path):
    assert "horowitz45" in shipped_profiles()
    assert load_profile("horowitz45") == load_profile(None)
    path = write_profile(tmp_path, name="mine", dram_read_32b_pj=100.0)
    assert load_profile(path).dram_read_32b_pj == 100.0
    config = config_from_dict({"cost": {"energy_profile": path}})
    assert config.cost.energy_profile == path


def test_bad_profiles_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"cost.energy_profile must be one of \['horowitz45'"):
        config_from_dict({"cost": {"energy_profile": "nope45"}})
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nfp32_mult_pj: 1\n")
    with pytest.raises(ConfigError, match="missing keys"):
        config_from_dict({"cost": {"energy_profile": str(bad)}})
    with pytest.raises(ConfigError, match="sram_read_32b_pj must be a number > 0, got -1"):
        config_from_dict({"cost": {"energy_profile": write_profile(tmp_path, sram_read_32b_pj=-1)}})
