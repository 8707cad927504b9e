"""NVML energy meter: the GPU's total-energy counter (millijoules since the driver loaded).

Uses nvidia-ml-py (``import pynvml``), imported only when this meter is asked for. Volta and newer
GPUs have the counter; older ones, MIG slices and machines without the driver raise
``MeterUnavailable`` and ``auto`` falls back. The counter covers the whole GPU, including other
processes that use it at the same time.
"""
from __future__ import annotations

import os
from typing import Any

import torch

from trainers.costs.meter_base import EnergyMeter, MeterUnavailable


def _import_pynvml() -> Any:
    try:
        import pynvml
    except ImportError as exc:
        raise MeterUnavailable("nvidia-ml-py is not installed (pip install nvidia-ml-py)") from exc
    return pynvml


def _device_index(device: torch.device) -> int:
    if device.index is not None:
        return device.index
    return torch.cuda.current_device() if torch.cuda.is_available() else 0


def nvml_handle(pynvml: Any, device: torch.device) -> Any:
    """The NVML handle of torch's ``device``, honouring ``CUDA_VISIBLE_DEVICES`` (indices or UUIDs).

    NVML numbers GPUs physically, CUDA numbers only the visible ones: ``cuda:1`` with
    ``CUDA_VISIBLE_DEVICES=3,5`` is NVML device 5.
    """
    index = _device_index(device)
    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    if index < len(visible):
        entry = visible[index]
        if entry.isdigit():
            return pynvml.nvmlDeviceGetHandleByIndex(int(entry))
        return pynvml.nvmlDeviceGetHandleByUUID(entry)
    return pynvml.nvmlDeviceGetHandleByIndex(index)


class NvmlMeter(EnergyMeter):
    """GPU energy over the measured block from ``nvmlDeviceGetTotalEnergyConsumption``, in joules."""

    source = "nvml"

    def __init__(self, pynvml: Any, handle: Any, device: torch.device | None = None):
        self._nvml = pynvml
        self._handle = handle
        self._device = device

    @classmethod
    def for_device(cls, device: torch.device | str) -> "NvmlMeter":
        """Meter of a CUDA ``device``; raises ``MeterUnavailable`` if NVML or its counter is missing."""
        device = torch.device(device)
        if device.type != "cuda":
            raise MeterUnavailable(f"nvml measures NVIDIA GPUs; training runs on '{device}'")
        pynvml = _import_pynvml()
        try:
            pynvml.nvmlInit()
            handle = nvml_handle(pynvml, device)
            pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
        except pynvml.NVMLError as exc:
            raise MeterUnavailable(f"NVML energy counter not available for '{device}': {exc}") from exc
        return cls(pynvml, handle, device)

    def _read_mj(self) -> int:
        return int(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle))

    def _synchronize(self) -> None:
        # Queued GPU work must be finished (or not yet started) when the counter is read.
        if self._device is not None and torch.cuda.is_available():
            torch.cuda.synchronize(self._device)

    def _begin(self) -> None:
        self._synchronize()
        self._start_mj = self._read_mj()

    def _end(self) -> float:
        self._synchronize()
        return (self._read_mj() - self._start_mj) / 1000.0
