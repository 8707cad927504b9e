"""Training-energy meters. Hardware counters are faked at the lowest layer only: a powercap
directory on disk for RAPL, a stand-in ``pynvml`` module in ``sys.modules`` for NVML."""
from __future__ import annotations

import os
import sys
import time
import types

import pytest

from trainers.costs import MeterUnavailable, make_meter
from trainers.costs.rapl import RaplMeter, counter_increase


def write_zone(root, name, label, energy, max_range=1_000_000):
    zone = root / name
    zone.mkdir(parents=True, exist_ok=True)
    (zone / "name").write_text(label + "\n")
    (zone / "energy_uj").write_text(f"{energy}\n")
    (zone / "max_energy_range_uj").write_text(f"{max_range}\n")
    return zone


@pytest.fixture
def powercap(tmp_path):
    root = tmp_path / "powercap"
    write_zone(root, "intel-rapl:0", "package-0", 900_000)
    write_zone(root, "intel-rapl:0:0", "core", 10)          # inside the package: not counted
    write_zone(root, "intel-rapl:0:1", "dram", 5_000)        # outside the package: counted
    write_zone(root, "intel-rapl:1", "psys", 77)             # contains the package: not counted
    (root / "intel-rapl").mkdir()                            # the control type, no counter
    return root


def set_energy(root, name, value):
    # Atomic, like a sysfs read: the meter's polling thread never sees a half-written file.
    tmp = root / name / "energy_uj.tmp"
    tmp.write_text(f"{value}\n")
    os.replace(tmp, root / name / "energy_uj")


def test_rapl_sums_package_and_dram_and_handles_wrap_around(powercap):
    meter = make_meter("rapl", powercap_root=str(powercap))
    assert isinstance(meter, RaplMeter) and meter.source == "rapl"
    meter.start()
    set_energy(powercap, "intel-rapl:0", 100_000)      # wrapped: 1_000_000 - 900_000 + 100_000
    set_energy(powercap, "intel-rapl:0:1", 25_000)     # +20_000
    set_energy(powercap, "intel-rapl:0:0", 999_999)    # ignored
    set_energy(powercap, "intel-rapl:1", 999_999)      # ignored
    reading = meter.stop()
    assert reading.joules == pytest.approx((200_000 + 20_000) / 1e6)
    assert reading.source == "rapl" and reading.seconds >= 0


def test_rapl_polling_catches_more_than_one_wrap(powercap):
    meter = RaplMeter(powercap, poll_seconds=0)
    meter.start()
    set_energy(powercap, "intel-rapl:0", 100_000)      # +200_000 (wrapped)
    meter.poll()
    set_energy(powercap, "intel-rapl:0", 950_000)      # +850_000
    meter.poll()
    set_energy(powercap, "intel-rapl:0", 50_000)       # +100_000 (wrapped again)
    assert meter.stop().joules == pytest.approx(1.15)


def test_rapl_background_thread_polls_and_stops(powercap):
    meter = RaplMeter(powercap, poll_seconds=0.01)
    meter.start()
    set_energy(powercap, "intel-rapl:0", 950_000)
    time.sleep(0.1)                                     # the thread reads 950_000 ...
    set_energy(powercap, "intel-rapl:0", 940_000)       # ... so this is one wrap, not a drop
    reading = meter.stop()
    assert reading.joules == pytest.approx((50_000 + 1_000_000 - 10_000) / 1e6)
    assert meter._thread is None


def test_counter_increase():
    assert counter_increase(10, 25, 100) == 15
    assert counter_increase(90, 5, 100) == 15


def test_rapl_unavailable_without_counters(tmp_path):
    with pytest.raises(MeterUnavailable, match="no powercap directory"):
        make_meter("rapl", powercap_root=str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(MeterUnavailable, match="no RAPL package zones"):
        make_meter("rapl", powercap_root=str(tmp_path / "empty"))


def test_rapl_counter_that_cannot_be_read_is_unavailable(powercap):
    counter = powercap / "intel-rapl:0:1" / "energy_uj"
    counter.unlink()
    counter.mkdir()
    with pytest.raises(MeterUnavailable, match="cannot read the RAPL counter"):
        make_meter("rapl", powercap_root=str(powercap))
    assert make_meter("auto", powercap_root=str(powercap)).source == "estimate"


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads anything")
def test_rapl_unreadable_counter_is_unavailable_and_auto_falls_back(powercap):
    (powercap / "intel-rapl:0" / "energy_uj").chmod(0o000)
    with pytest.raises(MeterUnavailable, match="not readable"):
        make_meter("rapl", powercap_root=str(powercap))
    assert make_meter("auto", powercap_root=str(powercap)).source == "estimate"


def test_estimate_meter_is_cpu_time_times_watts():
    meter = make_meter("estimate", watts_per_core=20.0)
    cpu = time.process_time()
    meter.start()
    deadline = time.perf_counter() + 0.05
    while time.perf_counter() < deadline:
        sum(range(1000))
    reading = meter.stop()
    cpu = time.process_time() - cpu
    assert reading.source == "estimate"
    assert 0 < reading.joules <= cpu * 20.0 + 1e-9
    assert reading.joules == pytest.approx(cpu * 20.0, rel=0.2)


class FakeNvml(types.ModuleType):
    """The few nvidia-ml-py calls the meter makes; the energy counter advances on each read."""

    class NVMLError(Exception):
        pass

    def __init__(self, supported: bool = True):
        super().__init__("pynvml")
        self.supported = supported
        self.reads = iter([5_000, 12_500, 20_000, 30_000])
        self.handles: list = []

    def nvmlInit(self):
        pass

    def nvmlDeviceGetHandleByIndex(self, index):
        self.handles.append(("index", index))
        return ("gpu", index)

    def nvmlDeviceGetHandleByUUID(self, uuid):
        self.handles.append(("uuid", uuid))
        return ("gpu", uuid)

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        if not self.supported:
            raise self.NVMLError("Not Supported")
        return next(self.reads)


@pytest.fixture
def fake_nvml(monkeypatch):
    module = FakeNvml()
    monkeypatch.setitem(sys.modules, "pynvml", module)
    return module


def test_auto_uses_nvml_on_cuda_and_maps_visible_devices(fake_nvml, monkeypatch, tmp_path):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    meter = make_meter("auto", device="cuda:1", powercap_root=str(tmp_path))
    assert meter.source == "nvml"
    assert fake_nvml.handles == [("index", 5)]
    meter.start()                                   # the probe read 5_000; start reads 12_500
    reading = meter.stop()                          # 20_000 mJ
    assert reading.joules == pytest.approx(7.5)
    assert reading.source == "nvml"


def test_nvml_handle_by_uuid(fake_nvml, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-abc")
    make_meter("nvml", device="cuda:0")
    assert fake_nvml.handles == [("uuid", "GPU-abc")]


def test_auto_falls_back_to_rapl_when_the_gpu_has_no_energy_counter(monkeypatch, powercap):
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml(supported=False))
    assert make_meter("auto", device="cuda", powercap_root=str(powercap)).source == "rapl"
    with pytest.raises(MeterUnavailable, match="NVML energy counter not available"):
        make_meter("nvml", device="cuda")


def test_nvml_unavailable_without_the_library_or_on_cpu(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "pynvml", None)      # import pynvml -> ImportError
    with pytest.raises(MeterUnavailable, match="nvidia-ml-py is not installed"):
        make_meter("nvml", device="cuda")
    assert make_meter("auto", device="cuda", powercap_root=str(tmp_path)).source == "estimate"
    with pytest.raises(MeterUnavailable, match="nvml measures NVIDIA GPUs"):
        make_meter("nvml", device="cpu")


def test_auto_on_cpu_never_asks_nvml(fake_nvml, tmp_path):
    assert make_meter("auto", device="cpu", powercap_root=str(tmp_path)).source == "estimate"
    assert fake_nvml.handles == []


def test_unknown_meter_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"must be one of \['auto', 'nvml', 'rapl', 'estimate'\], "
                                         r"got 'joulemeter'"):
        make_meter("joulemeter")


def test_reading_unpacks_as_joules_and_seconds():
    meter = make_meter("estimate")
    meter.start()
    joules, seconds = meter.stop()
    assert joules >= 0 and seconds >= 0
