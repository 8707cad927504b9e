"""The deployable form of a trained candidate, and how it is stored and rebuilt.

``exported_form`` folds masks and bit-widths into plain weights and, for channel granularity,
removes pruned channels physically (``shrink_model``). ``export_state`` stores quantized layers as
integer codes plus one scale per output channel; ``export_program`` makes a ``torch.export``
program; ``rebuild_exported`` turns a stored state back into a module of the right (shrunk)
shapes. Which trial, which files and the manifest are ``search.decide.export``'s part.
"""
from __future__ import annotations

import io
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader, default_collate

from spaces.candidate import Candidate
from spaces.layers import LayerInfo
from trainers import method_parts
from trainers.costs.latency import inference_copy
from trainers.eval_context import EvalContext
from trainers.pruning.masks import current_masks
from trainers.pruning.structured import shrink_model
from trainers.quantization import quant_scale
from trainers.training import measure_metric

CODE_TOLERANCE = 1e-3               # |w / scale - round(w / scale)| for a weight to be "on the grid"


def _shrinker(candidate: Candidate, context: EvalContext, model: nn.Module
             ) -> Callable[[nn.Module], nn.Module] | None:
    """How ``model`` (masks attached) is made physically smaller at export (None: masks only).

    Channel pruning removes every output channel whose weight row is entirely masked (and all
    channels coupled to it) with ``shrink_model``; a model already shrunk during training has no
    such rows and comes back unchanged.
    """
    if candidate.granularity != "channel":
        return None
    keep = {name: mask.reshape(mask.shape[0], -1).any(dim=1)
            for name, mask in current_masks(model).items()}
    example = method_parts.example_input(context)

    def shrink(folded: nn.Module) -> nn.Module:
        return shrink_model(folded, example, keep, inplace=True)

    return shrink


def exported_form(model: nn.Module, candidate: Candidate, context: EvalContext) -> nn.Module:
    """The deployable copy of a trained candidate: masks and bit-widths folded into plain weights,
    pruned channels physically removed for channel granularity (what latency is measured on)."""
    return inference_copy(model, _shrinker(candidate, context, model))


def exported_accuracy(model: nn.Module, context: EvalContext) -> dict[str, float]:
    """Validation (``accuracy``) and test metric of the exported model, measured on the CPU."""
    cpu = torch.device("cpu")
    return {"accuracy": measure_metric(model, context.data.val, cpu, context.metric_fn),
            "test_accuracy": measure_metric(model, context.data.test, cpu, context.metric_fn)}


def example_batch(context: EvalContext) -> list[torch.Tensor]:
    """The program's example input: two validation samples (``torch.export`` specialises a batch
    dimension of size 1 to a constant)."""
    val = context.data.val
    if not isinstance(val, DataLoader):
        # collated as a DataLoader would (a data set may return numpy arrays)
        return [default_collate([val[i][0] for i in range(min(2, len(val)))]).cpu()]
    inputs: list[torch.Tensor] = []     # a user's loader: its first batches, as training reads them
    for batch in val:
        inputs.append(batch[0] if isinstance(batch, (list, tuple)) else batch)
        if sum(len(x) for x in inputs) >= 2:
            break
    return [torch.cat(inputs)[:2].cpu()]


def quantized_codes(weight: torch.Tensor, bits: int) -> dict[str, Any] | None:
    """Integer codes and per-output-channel scales that reproduce an already fake-quantized
    weight exactly (to float precision); ``None`` when no such scales are found.

    Normally each row's scale is max|w| / qmax. After channel removal a row may have lost the
    input channel that held its largest value; its values are still integer multiples of the
    original scale, so for <= 8 bits the row's scale is searched as max|w| / m, m = 1..qmax.
    """
    qmax = 2 ** (bits - 1) - 1
    rows = weight.reshape(weight.shape[0], -1).to(torch.float64)
    scale = quant_scale(weight, bits).reshape(-1).to(torch.float64)

    def misfit(scales: torch.Tensor) -> torch.Tensor:
        codes = rows / scales[:, None]
        return (codes - codes.round()).abs().amax(dim=1)

    bad = misfit(scale) > CODE_TOLERANCE
    if bad.any() and bits <= 8:
        for level in range(1, qmax + 1):
            index = bad.nonzero().squeeze(1)
            peak = rows[index].abs().amax(dim=1)
            candidate = torch.where(peak > 0, peak / level, torch.ones_like(peak))
            ratio = rows[index] / candidate[:, None]
            fits = (ratio - ratio.round()).abs().amax(dim=1) <= CODE_TOLERANCE
            scale[index[fits]] = candidate[fits]
            bad = misfit(scale) > CODE_TOLERANCE
            if not bad.any():
                break
    if (misfit(scale) > CODE_TOLERANCE).any():
        return None
    codes = (rows / scale[:, None]).round().clamp(-qmax, qmax).reshape(weight.shape)
    dtype = torch.int8 if bits <= 8 else torch.int16
    return {"codes": codes.to(dtype), "scale": scale.to(torch.float32), "bits": bits}


def export_state(model: nn.Module, bits: Mapping[str, int]) -> dict[str, Any]:
    """``{"state_dict", "quantized"}``: float tensors, and for each layer below 32 bits whose
    weight is on its grid, integer codes and scales in place of its float weight."""
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    quantized = {}
    modules = dict(model.named_modules())
    for name, width in bits.items():
        if width < 32:
            codes = quantized_codes(modules[name].weight.detach().cpu(), width)
            if codes is not None:      # else the float weight (on its grid) is stored as is
                quantized[name] = codes
                state.pop(f"{name}.weight")
    return {"state_dict": state, "quantized": quantized}


def export_program(model: nn.Module, example: list[torch.Tensor]) -> tuple[Any, bool]:
    """A ``torch.export`` program with a dynamic batch dimension (static if that fails)."""
    args = tuple(example)
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    try:
        return torch.export.export(model, args,
                                   dynamic_shapes=tuple({0: batch} for _ in args)), True
    except Exception:  # some models specialise the batch size; a fixed-batch program still runs
        return torch.export.export(model, args), False


def program_bytes(model: nn.Module, example: list[torch.Tensor]) -> tuple[bytes, bool]:
    """The saved ``torch.export`` program (a ``.pt2`` file's bytes) and whether it takes any
    batch size."""
    program, dynamic = export_program(model, example)
    buffer = io.BytesIO()      # torch.export.save wants a name ending in .pt2 or a buffer
    torch.export.save(program, buffer)
    return buffer.getvalue(), dynamic


def layer_table(model: nn.Module, candidate: Candidate, layers: Sequence[LayerInfo]
                ) -> list[dict[str, Any]]:
    """Per prunable layer: requested and measured sparsity, bits, shapes and parameter counts."""
    modules = dict(model.named_modules())
    rows = []
    for layer in layers:
        weight = modules[layer.name].weight.detach()
        nonzero = int(torch.count_nonzero(weight))
        bits = candidate.bits.get(layer.name, 32)
        rows.append({
            "layer": layer.name, "kind": layer.kind,
            "sparsity": candidate.sparsity.get(layer.name, 0.0),
            "measured_sparsity": 1.0 - nonzero / layer.params,
            "bits": bits,
            "levels_max": _levels(weight, bits),
            "shape_before": list(layer.weight_shape), "shape_after": list(weight.shape),
            "params_before": layer.params, "params_after": int(weight.numel()),
            "nonzero_after": nonzero,
        })
    return rows


def _levels(weight: torch.Tensor, bits: int) -> int | None:
    """Most distinct nonzero values in one output channel (<= 2^bits - 2 when quantized)."""
    if bits >= 32:
        return None
    flat = weight.reshape(weight.shape[0], -1)
    return max(int(torch.unique(row[row != 0]).numel()) for row in flat)


def parameter_counts(dense: nn.Module, model: nn.Module) -> dict[str, int]:
    """Parameters of the dense model, of the exported one, and the exported one's nonzeros."""
    return {"dense_total": int(sum(p.numel() for p in dense.parameters())),
            "exported_total": int(sum(p.numel() for p in model.parameters())),
            "exported_nonzero": int(sum(int(torch.count_nonzero(p)) for p in model.parameters()))}


def rebuild_exported(stored: Mapping[str, Any], model: nn.Module) -> nn.Module:
    """``model`` (the architecture, dense shapes) resized to and loaded with a stored
    ``export_state``; quantized layers come back from their codes and scales. Eval mode."""
    state = dict(stored["state_dict"])
    for name, q in stored["quantized"].items():
        scale = q["scale"].reshape(-1, *([1] * (q["codes"].dim() - 1)))
        state[f"{name}.weight"] = q["codes"].to(torch.float32) * scale
    fit_shapes(model, state)
    model.load_state_dict(state)
    return model.eval()


def fit_shapes(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Resize parameters and buffers of ``model`` to the shapes in ``state`` (shrunk layers)."""
    for key, tensor in state.items():
        module_name, _, attr = key.rpartition(".")
        module = model.get_submodule(module_name) if module_name else model
        current = getattr(module, attr, None)
        if not isinstance(current, torch.Tensor) or current.shape == tensor.shape:
            continue
        fresh = torch.empty_like(tensor, dtype=current.dtype)
        if isinstance(current, nn.Parameter):
            setattr(module, attr, nn.Parameter(fresh, requires_grad=current.requires_grad))
        else:
            module.register_buffer(attr, fresh)
        if attr == "weight":
            _update_sizes(module, tensor.shape)
        elif isinstance(module, nn.RNNBase) and attr == "weight_ih_l0":
            module.input_size = tensor.shape[1]     # its input lost channels


def _update_sizes(module: nn.Module, shape: torch.Size) -> None:
    if isinstance(module, nn.Conv2d):
        if module.groups > 1 and module.groups == module.in_channels == module.out_channels:
            module.groups = shape[0]        # depthwise (MobileNet): one group per kept channel
        module.out_channels, module.in_channels = shape[0], shape[1] * module.groups
    elif isinstance(module, nn.Linear):
        module.out_features, module.in_features = shape[0], shape[1]
    elif isinstance(module, nn.modules.batchnorm._NormBase):
        module.num_features = shape[0]
    elif isinstance(module, nn.GroupNorm):
        module.num_channels = shape[0]
    elif isinstance(module, nn.LayerNorm):
        module.normalized_shape = tuple(shape)
