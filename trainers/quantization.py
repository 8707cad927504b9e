"""Per-channel symmetric weight fake-quantization with a straight-through gradient."""
from __future__ import annotations

import torch


def quant_scale(weight: torch.Tensor, bits: int) -> torch.Tensor:
    """One scale per output channel (dim 0) so that max |w| maps to the largest level."""
    qmax = 2 ** (bits - 1) - 1
    flat = weight.detach().reshape(weight.shape[0], -1).abs().amax(dim=1)
    scale = torch.where(flat > 0, flat / qmax, torch.ones_like(flat))
    return scale.reshape(-1, *([1] * (weight.dim() - 1)))


def quantize_weight(weight: torch.Tensor, bits: int) -> torch.Tensor:
    """Round to ``bits``-bit symmetric levels (zeros stay zero); 32 bits returns ``weight``."""
    if bits >= 32:
        return weight
    qmax = 2 ** (bits - 1) - 1
    scale = quant_scale(weight, bits)
    return torch.clamp(torch.round(weight / scale), -qmax, qmax) * scale


def fake_quantize(weight: torch.Tensor, bits: int) -> torch.Tensor:
    """Quantized values in the forward pass, identity gradient in the backward pass (STE)."""
    if bits >= 32:
        return weight
    return weight + (quantize_weight(weight, bits) - weight).detach()
