"""Measured inference latency of the model as it would be exported.

``inference_copy`` makes the exported form without touching the trained model: a deep copy with
masks and quantization folded into plain weights (``trainers.pruning.masks.folded_copy``) and, for channel
granularity, channels physically removed. ``measure_latency_ms`` times it on the run's device:
warm-up passes first, then the median of ``repeats`` timed passes of one batch, in milliseconds
(device work is synchronised before each clock read). It is a measurement, labelled as one; it
depends on the machine and on whatever else runs there at the same time. A study times each
distinct exported shape once (``cached_latency_ms``).
"""
from __future__ import annotations

import statistics
import time
from typing import Callable, Sequence

import torch
from torch import nn

from trainers.costs.latency_settings import LatencySettings
from trainers.costs.model_basis import shape_key
from trainers.pruning.masks import folded_copy


def inference_copy(model: nn.Module, shrink: Callable[[nn.Module], nn.Module] | None = None
                   ) -> nn.Module:
    """A folded (and, with ``shrink``, physically smaller) eval-mode copy of ``model``.

    The trained ``model`` is left as it was (masks attached, same mode).
    """
    exported = folded_copy(model)
    if shrink is not None:
        exported = shrink(exported)
    return exported.eval()


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


@torch.no_grad()
def measure_latency_ms(model: nn.Module, input_shape: Sequence[int], device: torch.device,
                       settings: LatencySettings = LatencySettings()) -> float:
    """Median wall time in ms of one forward pass on a batch of ``settings.batch_size`` samples."""
    model = model.to(device).eval()
    batch = torch.randn((settings.batch_size, *input_shape), device=device)
    for _ in range(settings.warmup):
        model(batch)
    times = []
    for _ in range(settings.repeats):
        _synchronize(device)
        start = time.perf_counter()
        model(batch)
        _synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000.0


def latency_key(model: nn.Module, input_shape: Sequence[int], device: torch.device,
                settings: LatencySettings) -> tuple:
    """What a latency measurement stands for in a cache: the shapes, the input, device, settings
    and torch's thread count (a worker with fewer threads than the process that timed a shape
    times it again: the figures of one study stay comparable within a thread count)."""
    return (shape_key(model), tuple(input_shape), str(device), settings, torch.get_num_threads())


def cached_latency_ms(model: nn.Module, input_shape: Sequence[int], device: torch.device,
                      settings: LatencySettings, cache: dict,
                      export: Callable[[], nn.Module] | None = None) -> float:
    """``measure_latency_ms``, measured once per distinct ``shape_key`` in ``cache``.

    Unstructured and N:M candidates run the dense shapes on dense kernels: timing each of them
    would repeat one measurement with noise. Channel-pruned candidates have their own shapes, so
    they are timed (unless one with the same shapes was). ``export``: makes the model to time
    from ``model`` (e.g. its folded copy), called only when the shapes are new.
    """
    key = latency_key(model, input_shape, device, settings)
    if key not in cache:
        cache[key] = measure_latency_ms(export() if export else model, input_shape, device,
                                        settings)
    return cache[key]
