"""Hardware detection: the Linux path for real, macOS/Windows parsing on recorded outputs."""

from __future__ import annotations

import json

import pytest
from perf_standins import FakeProbe

from tinytorch.perf import hardware as hw

PROC_CPUINFO = """\
processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz
cpu MHz\t\t: 2500.000
physical id\t: 0
core id\t\t: 0
flags\t\t: fpu sse sse2 avx fma avx2 avx512f avx512bw

processor\t: 1
model name\t: Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz
physical id\t: 0
core id\t\t: 1

processor\t: 2
physical id\t: 0
core id\t\t: 0
"""

LSCPU = """\
Architecture:                            x86_64
Model name:                              AMD EPYC 7B13
CPU max MHz:                             3500.0000
L1d cache:                               64 KiB (2 instances)
L2 cache:                                1 MiB (2 instances)
L3 cache:                                32 MiB (1 instance)
Flags:                                   fpu sse2 avx fma avx2
"""

SYSCTL_APPLE = """\
machdep.cpu.brand_string: Apple M1 Pro
hw.physicalcpu: 10
hw.logicalcpu: 10
hw.memsize: 17179869184
hw.l1dcachesize: 65536
hw.l2cachesize: 4194304
hw.perflevel0.l1dcachesize: 131072
hw.perflevel0.l2cachesize: 12582912
hw.optional.neon: 1
hw.optional.arm.FEAT_FHM: 1
"""

SYSCTL_INTEL = """\
machdep.cpu.brand_string: Intel(R) Core(TM) i7-8850H CPU @ 2.60GHz
hw.physicalcpu: 6
hw.logicalcpu: 12
hw.memsize: 34359738368
hw.cpufrequency_max: 2600000000
hw.l1dcachesize: 32768
hw.l2cachesize: 262144
hw.l3cachesize: 9437184
machdep.cpu.features: FPU VME SSE SSE2 SSE3 FMA AVX1.0
machdep.cpu.leaf7_features: SMEP BMI1 AVX2 BMI2
"""

WMIC = """\r
\r
L2CacheSize=12288\r
L3CacheSize=30720\r
MaxClockSpeed=2904\r
Name=Intel(R) Core(TM) i9-10900 CPU @ 2.80GHz\r
NumberOfCores=10\r
NumberOfLogicalProcessors=20\r
\r
"""

POWERSHELL = json.dumps([
    {"Name": "AMD Ryzen 9 5950X 16-Core Processor", "NumberOfCores": 16,
     "NumberOfLogicalProcessors": 32, "MaxClockSpeed": 3401, "L2CacheSize": 8192,
     "L3CacheSize": 65536},
])


def test_parse_proc_cpuinfo():
    info = hw.parse_proc_cpuinfo(PROC_CPUINFO)
    assert info["cpu_name"].startswith("Intel(R) Xeon(R) Gold 6248")
    assert info["mhz"] == 2500.0 and info["physical_cores"] == 2
    assert {"avx512f", "avx2", "fma"} <= info["flags"]
    assert hw.flops_per_cycle(info["flags"]) == (64, "AVX-512F")


def test_parse_lscpu_per_instance_caches():
    info = hw.parse_lscpu(LSCPU)
    assert info["cpu_name"] == "AMD EPYC 7B13" and info["max_mhz"] == 3500.0
    assert info["l1d_bytes"] == 32 * 1024 and info["l2_bytes"] == 512 * 1024
    assert info["l3_bytes"] == 32 * 1024**2
    assert hw.flops_per_cycle(info["flags"]) == (32, "AVX2+FMA3")


def test_parse_sysctl_apple_silicon_has_no_frequency():
    info = hw.parse_sysctl(SYSCTL_APPLE)
    assert info["cpu_name"] == "Apple M1 Pro" and info["physical_cores"] == 10
    assert info["memory_bytes"] == 16 * 1024**3
    assert info["l1d_bytes"] == 131072 and info["l2_bytes"] == 12582912
    assert "frequency_ghz" not in info  # macOS on Apple Silicon does not report it: no guess
    assert hw.flops_per_cycle(info["flags"], info["cpu_name"], "arm64")[0] == 32


def test_parse_sysctl_intel_mac():
    info = hw.parse_sysctl(SYSCTL_INTEL)
    assert info["frequency_ghz"] == pytest.approx(2.6)
    assert info["l3_bytes"] == 9437184 and info["logical_cores"] == 12
    assert hw.flops_per_cycle(info["flags"]) == (32, "AVX2+FMA3")


def test_parse_wmic_and_powershell():
    info = hw.parse_wmic(WMIC)
    assert info["cpu_name"] == "Intel(R) Core(TM) i9-10900 CPU @ 2.80GHz"
    assert (info["physical_cores"], info["logical_cores"]) == (10, 20)
    assert info["frequency_ghz"] == pytest.approx(2.904)
    assert info["l2_bytes"] == 12288 * 1024 and info["l3_bytes"] == 30720 * 1024
    info = hw.parse_powershell_json(POWERSHELL)
    assert info["cpu_name"].startswith("AMD Ryzen 9 5950X")
    assert info["physical_cores"] == 16 and info["l3_bytes"] == 64 * 1024**2


def test_flops_per_cycle_table():
    assert hw.flops_per_cycle({"avx", "sse2"}) == (16, "AVX")
    assert hw.flops_per_cycle({"sse2"}) == (8, "SSE2")
    assert hw.flops_per_cycle({"asimd"}, "Cortex-A72", "aarch64") == (16, "NEON")
    assert hw.flops_per_cycle(set(), "", "riscv64") == (None, "unknown")


def _fast_measurements(monkeypatch, calls, others_cores=0.0):
    probe = type("Probe", (FakeProbe,), {"others_cores": others_cores})
    monkeypatch.setattr(hw, "ContentionProbe", probe)

    def gemm(n=2048, repeats=5):
        calls.append(("gemm", n))
        return 100.0

    def bandwidth(array_bytes, repeats=5):
        calls.append(("stream", array_bytes))
        return {"copy": 10.0, "scale": 11.0, "add": 12.0, "triad": 13.0}

    monkeypatch.setattr(hw, "measure_gemm_peak", gemm)
    monkeypatch.setattr(hw, "measure_bandwidth", bandwidth)


def test_spec_is_cached_and_invalidated_when_blas_changes(monkeypatch):
    calls: list = []
    _fast_measurements(monkeypatch, calls)
    spec = hw.get_hardware_spec()
    assert not spec.from_cache and spec.measured_peak_gflops == 100.0
    assert spec.memory_bandwidth_gbs == 10.0 and spec.ridge_point == pytest.approx(10.0)
    llc = spec.l3_bytes or spec.l2_bytes
    assert ("stream", max(4 * llc, 64 * 1024**2)) in calls  # arrays >= 4x the last-level cache
    n = len(calls)
    again = hw.get_hardware_spec()
    assert again.from_cache and len(calls) == n
    assert hw.get_hardware_spec(quick=True).from_cache  # quick uses the full measurement
    monkeypatch.setattr(hw, "_blas_info", lambda: ("OtherBLAS 1.0", 4))
    changed = hw.get_hardware_spec()
    assert not changed.from_cache and len(calls) > n
    data = json.loads(hw.cache_path().read_text())
    assert len(data["machines"]) == 2


def test_linux_path_real_quick():
    spec = hw.get_hardware_spec(quick=True)
    assert spec.quick and spec.measured_peak_gflops > 0 and spec.memory_bandwidth_gbs > 0
    assert set(spec.stream_gbs) == {"copy", "scale", "add", "triad"}
    assert spec.logical_cores >= 1 and spec.memory_bytes > 0
    assert spec.ridge_point == spec.measured_peak_gflops / spec.memory_bandwidth_gbs
    if spec.theoretical_peak_gflops is not None:
        assert spec.theoretical_peak_gflops == pytest.approx(
            spec.physical_cores * spec.frequency_ghz * spec.flops_per_cycle)
    json.dumps(spec.to_dict())


def test_stream_byte_counts():
    assert hw.STREAM_ARRAYS_MOVED == {"copy": 2, "scale": 2, "add": 3, "triad": 5}
    rates = hw.measure_bandwidth(4 * 1024**2, repeats=1)
    assert all(r > 0 for r in rates.values())


def test_contended_measurement_is_flagged_and_never_cached(monkeypatch):
    calls: list = []
    _fast_measurements(monkeypatch, calls, others_cores=1.4)
    spec = hw.get_hardware_spec()
    assert spec.contended and spec.contention["others_cores"] == 1.4
    assert "1.40 cores" in spec.warning and "--refresh" in spec.warning
    assert not hw.cache_path().exists() or not json.loads(hw.cache_path().read_text())["machines"]
    n = len(calls)
    assert not hw.get_hardware_spec().from_cache and len(calls) > n  # measured again
    _fast_measurements(monkeypatch, calls, others_cores=0.1)  # quiet now: cached
    quiet = hw.get_hardware_spec()
    assert not quiet.contended and quiet.warning is None
    assert hw.get_hardware_spec().from_cache


def test_cached_measurement_expires(monkeypatch):
    calls: list = []
    _fast_measurements(monkeypatch, calls)
    hw.get_hardware_spec()
    assert hw.get_hardware_spec().from_cache
    data = json.loads(hw.cache_path().read_text())
    for entry in data["machines"].values():
        entry["measured_unix"] -= hw.CACHE_MAX_AGE_S + 60
    hw.cache_path().write_text(json.dumps(data))
    n = len(calls)
    assert not hw.get_hardware_spec().from_cache and len(calls) > n


def test_ceilings_are_the_best_of_the_repeats():
    readings = iter([0.0, 3.0, 10.0, 11.0, 20.0, 22.0])  # runs of 3 s, 1 s and 2 s
    assert hw._best_time(lambda: None, repeats=3, warmup=0, clock=lambda: next(readings)) == 1.0


def test_contention_probe_sees_another_busy_process():
    import subprocess
    import sys

    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        import time

        time.sleep(0.3)
        with hw.ContentionProbe() as probe:
            time.sleep(0.5)
    finally:
        busy.kill()
        busy.wait()
    assert probe.result["others_cores"] > 0.5 and probe.result["contended"]
    assert probe.result["own_cpu_per_wall"] < 0.2  # this process slept


def test_full_measurement_reports_the_direct_gemm_call(monkeypatch):
    """Issue 21 §5: `tito performance hardware`'s peak must be what ``measure_gemm_peak(2048, 5)``
    gives when called directly: one size (the reported one), the same repeats, the BLAS thread
    count the caller has, no other Python thread running, and before the STREAM arrays exist."""
    import threading

    from tinytorch.core.threads import get_num_threads

    monkeypatch.setattr(hw, "ContentionProbe", FakeProbe)
    threads_before, python_threads = get_num_threads(), threading.active_count()
    calls: list = []

    def gemm(n=2048, repeats=5):  # a rate that depends on n, so a mix-up of sizes shows
        calls.append({"n": n, "repeats": repeats, "blas_threads": get_num_threads(),
                      "python_threads": threading.active_count(),
                      "after_stream": any(c == "stream" for c in calls)})
        return float(n) / 10

    def bandwidth(array_bytes, repeats=5):
        calls.append("stream")
        return {"copy": 10.0, "scale": 11.0, "add": 12.0, "triad": 13.0}

    monkeypatch.setattr(hw, "measure_gemm_peak", gemm)
    monkeypatch.setattr(hw, "measure_bandwidth", bandwidth)
    spec = hw.get_hardware_spec(refresh=True)
    gemms = [c for c in calls if c != "stream"]
    assert gemms == [{"n": 2048, "repeats": 5, "blas_threads": threads_before,
                      "python_threads": python_threads, "after_stream": False}]
    assert (spec.gemm_size, spec.measured_peak_gflops) == (2048, 204.8)
