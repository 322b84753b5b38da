"""What the machine can do: CPU, caches, BLAS, theoretical and **measured** peaks.

`get_hardware_spec()` reads each platform's own sources (Linux: ``/proc/cpuinfo``,
``/sys/devices/system/cpu/cpu0/cache``, ``lscpu``; macOS: ``sysctl``; Windows: ``wmic`` or
PowerShell's ``Get-CimInstance Win32_Processor``) plus psutil, then measures:

* the float32 GEMM peak: ``np.matmul(a, b, out=c)`` on square matrices, the best of several
  repeats after a warm-up (a ceiling is what the machine *can* do: interference only ever
  slows a run down), 2·n³ FLOPs per product (1 multiply-add = 2 FLOPs);
* STREAM-style memory bandwidth with float64 arrays each >= 4x the last-level cache, run with
  ``out=`` so NumPy allocates no temporaries. Bytes are what NumPy really moves (reads + writes,
  not counting the write-allocate the hardware adds):

  ======  =================================================  ==========================
  kernel  NumPy                                              bytes per element (float64)
  ======  =================================================  ==========================
  copy    ``np.copyto(c, a)``                                16  (read a, write c)
  scale   ``np.multiply(c, s, out=b)``                       16
  add     ``np.add(a, b, out=c)``                            24
  triad   ``np.multiply(c, s, out=a); np.add(a, b, out=a)``  40  (NumPy has no fused triad:
                                                                  two passes, 2 + 3 arrays)
  ======  =================================================  ==========================

  The headline ``memory_bandwidth_gbs`` is the copy rate (pure traffic, no arithmetic): the
  roofline's memory ceiling. Each kernel's rate is its best of the repeats, as STREAM reports.

While measuring, core's `ContentionProbe` (the one check every timing tool uses) takes the
CPU time of every other process from the system's counters (system busy time minus this
process's CPU time) and compares it with the wall time: other processes using more than
``CONTENDED_CORES`` cores on average make the measurement **contended** (``spec.contended``,
with the figures and the load average in ``spec.contention``).
A contended measurement is reported with a warning and never cached.

Measurements are cached in ``~/.cache/tinytorch/hardware.json`` (``$TINYTORCH_CACHE_DIR``
overrides the directory), keyed by CPU model, BLAS library and thread count, so a new CPU or a
different BLAS invalidates them, and expire after ``CACHE_MAX_AGE_S`` (``refresh=True``
measures again at any time). ``quick=True`` returns the cached measurement if there is one,
else a small (< 1 s) measurement marked ``quick`` (cached apart from full measurements).

FLOPs per cycle per core (float32) from the ISA, assuming two vector FMA pipes where the
microarchitecture family has them (documented, not probed):

=======================  ==========================================  =============
ISA                      lanes x ops x pipes                          FLOPs/cycle
=======================  ==========================================  =============
AVX-512F                 16 fp32 lanes x 2 (FMA) x 2 FMA units        64
AVX2 + FMA3              8 lanes x 2 (FMA) x 2 FMA units              32
AVX (no FMA)             8 lanes x (1 add + 1 mul port)               16
SSE2                     4 lanes x (1 add + 1 mul port)                8
ARM NEON, Apple M-series 4 lanes x 2 (FMA) x 4 FMA units              32
ARM NEON (other)         4 lanes x 2 (FMA) x 2 FMA units              16
=======================  ==========================================  =============

Theoretical peak = physical cores x frequency x FLOPs/cycle. The frequency is what the OS
reports (often the base or TSC clock; boost clocks can make the measured peak exceed it); where
the OS reports none it is ``None`` and so is the theoretical peak.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tinytorch.core.contention import CONTENDED_CORES, ContentionProbe, contention_note
from tinytorch.core.threads import get_num_threads

__all__ = [
    "HardwareSpec", "get_hardware_spec", "flops_per_cycle", "measure_gemm_peak",
    "measure_bandwidth", "parse_proc_cpuinfo", "parse_lscpu", "parse_sysctl", "parse_wmic",
    "parse_powershell_json", "cache_path", "ContentionProbe", "CACHE_MAX_AGE_S",
    "CONTENDED_CORES",
]

CACHE_VERSION = 4  # 3: best-of-N ceilings, contention checked, entries expire;
                   # 4: the GEMM peak is measure_gemm_peak(GEMM_SIZE, GEMM_REPEATS) alone

#: a cached measurement older than this (seconds) is measured again
CACHE_MAX_AGE_S = 7 * 24 * 3600
#: the full measurement's GEMM: ``measure_gemm_peak(GEMM_SIZE, GEMM_REPEATS)``, exactly what a
#: user calling it directly gets, so the CLI's figure and a direct call agree
GEMM_SIZE, GEMM_REPEATS = 2048, 5


@dataclass
class HardwareSpec:
    """One machine's description. Units: GHz, bytes, GFLOP/s, GB/s (1e9 bytes/s).

    ``measured_peak_gflops`` (float32 GEMM) and ``memory_bandwidth_gbs`` (STREAM copy) are the
    roofline's ceilings; ``ridge_point`` is their ratio in FLOP/byte. ``theoretical_peak_gflops``
    is cores x GHz x ``flops_per_cycle`` from the ISA (None when the frequency is unknown).
    ``quick`` marks a sub-second estimate, ``from_cache`` a measurement read from the cache.
    ``contended`` says other processes were busy during the measurement (so the ceilings are
    too low; such a measurement is never cached); ``contention`` has the figures
    (``others_cores``, ``own_cpu_per_wall``, ``load_1min``, ...) and ``warning`` the sentence.

    >>> spec = get_hardware_spec(quick=True)
    >>> spec.measured_peak_gflops > 0 and spec.memory_bandwidth_gbs > 0
    True
    >>> round(spec.ridge_point, 6) == round(spec.measured_peak_gflops / spec.memory_bandwidth_gbs, 6)
    True
    """

    cpu_name: str
    platform: str
    architecture: str
    physical_cores: int | None
    logical_cores: int | None
    frequency_ghz: float | None
    frequency_source: str | None
    memory_bytes: int | None
    l1d_bytes: int | None
    l2_bytes: int | None
    l3_bytes: int | None
    blas: str
    blas_threads: int | None
    isa: str
    flops_per_cycle: int | None
    theoretical_peak_gflops: float | None
    measured_peak_gflops: float
    memory_bandwidth_gbs: float
    stream_gbs: dict[str, float] = field(default_factory=dict)
    gemm_size: int = 0
    stream_array_bytes: int = 0
    quick: bool = False
    from_cache: bool = False
    measured_at: str = ""
    measured_unix: float = 0.0
    contended: bool = False
    contention: dict[str, Any] = field(default_factory=dict)

    @property
    def ridge_point(self) -> float:
        """FLOP/byte where the measured compute and bandwidth ceilings meet."""
        return self.measured_peak_gflops / self.memory_bandwidth_gbs

    @property
    def last_level_cache_bytes(self) -> int | None:
        return self.l3_bytes or self.l2_bytes or self.l1d_bytes

    @property
    def warning(self) -> str | None:
        """A one-sentence warning when the measurement was contended, else None."""
        note = contention_note(self.contention if self.contended else None, "measuring")
        if note is None:
            return None
        return (note + f" on {self.logical_cores} cores: the ceilings are too low and were not "
                "cached; measure on a quiet machine with `tito performance hardware --refresh`")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["ridge_point"] = self.ridge_point
        d["warning"] = self.warning
        return d

    def rows(self) -> list[tuple[str, str]]:
        """(what, value) lines of ``tito performance hardware`` and of the notebook table."""

        def size(b):
            return "n/a" if b is None else (f"{b / 1024**2:.0f} MiB" if b >= 1024**2 else f"{b / 1024:.0f} KiB")

        freq = (f"{self.frequency_ghz:.3f} GHz ({self.frequency_source})" if self.frequency_ghz
                else "not reported by the OS")
        theo = (f"{self.theoretical_peak_gflops:.1f} GFLOP/s = {self.physical_cores} cores x "
                f"{self.frequency_ghz:.3f} GHz x {self.flops_per_cycle} FLOPs/cycle ({self.isa})"
                if self.theoretical_peak_gflops else f"unknown ({self.isa})")
        source = ("cached " + self.measured_at if self.from_cache else "measured now") + (
            " (quick estimate)" if self.quick else "")
        rows = [
            ("CPU", self.cpu_name), ("platform", f"{self.platform} ({self.architecture})"),
            ("cores", f"{self.physical_cores} physical, {self.logical_cores} logical"),
            ("frequency", freq), ("memory", f"{(self.memory_bytes or 0) / 1024**3:.1f} GiB"),
            ("caches", f"L1d {size(self.l1d_bytes)}, L2 {size(self.l2_bytes)}, L3 {size(self.l3_bytes)}"),
            ("BLAS", f"{self.blas}, threads: {self.blas_threads if self.blas_threads else 'not reported'}"),
            ("theoretical peak", theo),
            ("measured peak", f"{self.measured_peak_gflops:.1f} GFLOP/s (float32 GEMM n={self.gemm_size}, "
                              "best of repeats)"),
            ("memory bandwidth", f"{self.memory_bandwidth_gbs:.1f} GB/s (STREAM copy, arrays "
                                 f"{self.stream_array_bytes / 1024**2:.0f} MiB)"),
            ("STREAM", ", ".join(f"{k} {v:.1f}" for k, v in self.stream_gbs.items()) + " GB/s"),
            ("ridge point", f"{self.ridge_point:.2f} FLOP/byte"),
            ("measurement", source),
        ]
        c = self.contention
        if c and c.get("others_cores") is not None:  # None: this system's counters are unreadable
            load = c.get("load_1min")
            rows.append(("contention", f"other processes {c['others_cores']:.2f} cores, this process "
                         f"{c['own_cpu_per_wall']:.2f} CPU-s per wall-s"
                         + (f", load average {load:.2f}" if load is not None else "")))
        return rows

    def _repr_html_(self) -> str:
        """The ``rows`` as a table, the contention warning as its caption (Jupyter)."""
        from tinytorch.core.viz import html_table

        caption = f"Hardware specification{' - warning: ' + self.warning if self.warning else ''}"
        return html_table(("", "value"), self.rows(), caption)


# ------------------------------------------------------------------------------ size parsing


_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1024**2, "mb": 1024**2,
          "mib": 1024**2, "g": 1024**3, "gb": 1024**3, "gib": 1024**3}


def _parse_size(text: str) -> int | None:
    """'32K', '512 KB', '32 MiB (1 instance)', '1048576' -> bytes."""
    m = re.match(r"\s*([\d.]+)\s*([KMG]i?B?|B)?", text.strip(), re.IGNORECASE)
    if not m:
        return None
    unit = (m.group(2) or "").lower()
    return int(float(m.group(1)) * _UNITS.get(unit, 1))


def _int_or_none(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


# ------------------------------------------------------------------------------ Linux


def parse_proc_cpuinfo(text: str) -> dict[str, Any]:
    """Model name, ISA flags, reported MHz and physical cores from ``/proc/cpuinfo``.

    >>> parse_proc_cpuinfo("model name : Example CPU\\nflags : sse2 avx2 fma\\n"
    ...                    "physical id : 0\\ncore id : 0\\ncore id : 1\\n")["physical_cores"]
    2
    """
    info: dict[str, Any] = {}
    cores: set[tuple[str, str]] = set()
    phys = None
    for line in text.splitlines():
        if ":" not in line:
            continue
        key, _, value = line.partition(":")
        key, value = key.strip().lower(), value.strip()
        if key == "physical id":
            phys = value
        elif key == "core id":
            cores.add((phys or "0", value))
        elif key in ("model name", "hardware", "cpu model") and "cpu_name" not in info and value:
            info["cpu_name"] = value
        elif key in ("flags", "features") and "flags" not in info:
            info["flags"] = set(value.lower().split())
        elif key == "cpu mhz" and "mhz" not in info:
            try:
                info["mhz"] = float(value)
            except ValueError:
                pass
    if cores:
        info["physical_cores"] = len(cores)
    return info


def parse_lscpu(text: str) -> dict[str, Any]:
    """Model name, caches and max MHz from plain ``lscpu`` output (caches: per instance).

    >>> parse_lscpu("Model name: Example CPU\\nL2 cache: 2 MiB (2 instances)\\n")["l2_bytes"]
    1048576
    """
    info: dict[str, Any] = {}
    for line in text.splitlines():
        if ":" not in line:
            continue
        key, _, value = line.partition(":")
        key, value = key.strip().lower(), value.strip()
        if key == "model name":
            info["cpu_name"] = value
        elif key == "cpu max mhz":
            try:
                info["max_mhz"] = float(value)
            except ValueError:
                pass
        elif key in ("l1d cache", "l2 cache", "l3 cache"):
            size = _parse_size(value)
            m = re.search(r"\((\d+) instances?\)", value)
            if size is not None and m:  # lscpu >= 2.34 prints the total over instances
                size //= int(m.group(1))
            info[key.split()[0] + "_bytes"] = size
        elif key == "flags":
            info["flags"] = set(value.lower().split())
    return info


def _linux_sysfs_caches(root: Path = Path("/sys/devices/system/cpu/cpu0/cache")) -> dict[str, int]:
    out: dict[str, int] = {}
    for index in sorted(root.glob("index*")):
        try:
            level = (index / "level").read_text().strip()
            kind = (index / "type").read_text().strip()
            size = _parse_size((index / "size").read_text())
        except OSError:
            continue
        if size is None or kind == "Instruction":
            continue
        out[f"l{level}_bytes"] = size
    return out


def _linux_max_mhz() -> float | None:
    try:
        khz = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq").read_text()
        return int(khz) / 1000
    except (OSError, ValueError):
        return None


def _run(cmd: list[str], timeout: float = 5) -> str | None:
    if shutil.which(cmd[0]) is None:
        return None
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "LC_ALL": "C"})
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


def _linux_info() -> dict[str, Any]:
    info: dict[str, Any] = {}
    try:
        info.update(parse_proc_cpuinfo(Path("/proc/cpuinfo").read_text()))
    except OSError:
        pass
    lscpu = _run(["lscpu"])
    if lscpu:
        parsed = parse_lscpu(lscpu)
        for key, value in parsed.items():
            info.setdefault(key, value)
        if "max_mhz" in parsed:
            info["max_mhz"] = parsed["max_mhz"]
    info.update(_linux_sysfs_caches())
    max_mhz = _linux_max_mhz() or info.get("max_mhz")
    if max_mhz:
        info["frequency_ghz"], info["frequency_source"] = max_mhz / 1000, "cpufreq max frequency"
    elif info.get("mhz"):
        info["frequency_ghz"] = info["mhz"] / 1000
        info["frequency_source"] = "/proc/cpuinfo 'cpu MHz' (nominal clock; boost may be higher)"
    return info


# ------------------------------------------------------------------------------ macOS

_SYSCTL_KEYS = [
    "machdep.cpu.brand_string", "hw.physicalcpu", "hw.logicalcpu", "hw.memsize",
    "hw.cpufrequency_max", "hw.cpufrequency", "hw.l1dcachesize", "hw.l2cachesize",
    "hw.l3cachesize", "hw.perflevel0.l1dcachesize", "hw.perflevel0.l2cachesize",
    "machdep.cpu.features", "machdep.cpu.leaf7_features", "hw.optional.neon",
    "hw.optional.arm.FEAT_FHM", "hw.optional.avx512f", "hw.optional.avx2_0", "hw.optional.fma",
]


def parse_sysctl(text: str) -> dict[str, Any]:
    """Parse ``sysctl KEY...`` output ("key: value" lines) from macOS.

    >>> parse_sysctl("machdep.cpu.brand_string: Apple M1\\nhw.physicalcpu: 8\\n")["physical_cores"]
    8
    """
    raw: dict[str, str] = {}
    for line in text.splitlines():
        if ":" in line:
            key, _, value = line.partition(":")
            raw[key.strip()] = value.strip()
    info: dict[str, Any] = {}
    if raw.get("machdep.cpu.brand_string"):
        info["cpu_name"] = raw["machdep.cpu.brand_string"]
    for src, dst in (("hw.physicalcpu", "physical_cores"), ("hw.logicalcpu", "logical_cores"),
                     ("hw.memsize", "memory_bytes")):
        if _int_or_none(raw.get(src)) is not None:
            info[dst] = _int_or_none(raw[src])
    for level in ("l1d", "l2", "l3"):
        value = _int_or_none(raw.get(f"hw.perflevel0.{level}cachesize")) or _int_or_none(
            raw.get(f"hw.{level}cachesize"))
        if value:
            info[f"{level}_bytes"] = value
    hz = _int_or_none(raw.get("hw.cpufrequency_max")) or _int_or_none(raw.get("hw.cpufrequency"))
    if hz:  # Apple Silicon reports no frequency: leave it None rather than guess
        info["frequency_ghz"], info["frequency_source"] = hz / 1e9, "sysctl hw.cpufrequency"
    flags = set((raw.get("machdep.cpu.features", "") + " "
                 + raw.get("machdep.cpu.leaf7_features", "")).lower().replace(".", "_").split())
    for key, flag in (("hw.optional.avx512f", "avx512f"), ("hw.optional.avx2_0", "avx2"),
                      ("hw.optional.fma", "fma"), ("hw.optional.neon", "neon")):
        if raw.get(key) == "1":
            flags.add(flag)
    if "fma" not in flags and "fma3" in flags:
        flags.add("fma")
    info["flags"] = flags
    return info


def _macos_info() -> dict[str, Any]:
    out = _run(["sysctl", *_SYSCTL_KEYS]) or _run(["sysctl", "-a"], timeout=10) or ""
    return parse_sysctl(out)


# ------------------------------------------------------------------------------ Windows

_WMIC_FIELDS = "Name,NumberOfCores,NumberOfLogicalProcessors,MaxClockSpeed,L2CacheSize,L3CacheSize"


def _windows_fields(raw: dict[str, Any]) -> dict[str, Any]:
    info: dict[str, Any] = {}
    if raw.get("Name"):
        info["cpu_name"] = str(raw["Name"]).strip()
    for src, dst in (("NumberOfCores", "physical_cores"),
                     ("NumberOfLogicalProcessors", "logical_cores")):
        if _int_or_none(raw.get(src)) is not None:
            info[dst] = _int_or_none(raw[src])
    mhz = _int_or_none(raw.get("MaxClockSpeed"))
    if mhz:
        info["frequency_ghz"] = mhz / 1000
        info["frequency_source"] = "Win32_Processor.MaxClockSpeed"
    for src, dst in (("L2CacheSize", "l2_bytes"), ("L3CacheSize", "l3_bytes")):
        kb = _int_or_none(raw.get(src))
        if kb:  # Win32_Processor reports KB (total over cores)
            info[dst] = kb * 1024
    return info


def parse_wmic(text: str) -> dict[str, Any]:
    """Parse ``wmic cpu get ... /format:list`` output ("Key=Value" lines).

    >>> parse_wmic("Name=Example CPU\\nNumberOfCores=4\\n")["physical_cores"]
    4
    """
    raw: dict[str, str] = {}
    for line in text.splitlines():
        if "=" in line:
            key, _, value = line.partition("=")
            raw.setdefault(key.strip(), value.strip())
    return _windows_fields(raw)


def parse_powershell_json(text: str) -> dict[str, Any]:
    """Parse ``Get-CimInstance Win32_Processor | Select ... | ConvertTo-Json`` output.

    >>> parse_powershell_json('[{"Name": "Example CPU", "NumberOfCores": 4},'
    ...                       ' {"Name": "Example CPU", "NumberOfCores": 4}]')["physical_cores"]
    8
    """
    data = json.loads(text)
    if isinstance(data, list):  # one object per socket: sum the cores
        merged = dict(data[0])
        for key in ("NumberOfCores", "NumberOfLogicalProcessors"):
            merged[key] = sum(_int_or_none(d.get(key)) or 0 for d in data)
        data = merged
    return _windows_fields(data)


def _windows_info() -> dict[str, Any]:
    out = _run(["wmic", "cpu", "get", _WMIC_FIELDS, "/format:list"])
    if out:
        return parse_wmic(out)
    ps = _run(["powershell", "-NoProfile", "-Command",
               f"Get-CimInstance Win32_Processor | Select-Object {_WMIC_FIELDS} | ConvertTo-Json"],
              timeout=15)
    return parse_powershell_json(ps) if ps else {}


# ------------------------------------------------------------------------------ ISA, BLAS


def _numpy_cpu_flags() -> set[str]:
    """NumPy's own runtime CPU feature detection (works on every OS)."""
    for mod in ("numpy._core._multiarray_umath", "numpy.core._multiarray_umath"):
        try:
            features = __import__(mod, fromlist=["__cpu_features__"]).__cpu_features__
        except (ImportError, AttributeError):
            continue
        names = {k.lower() for k, v in features.items() if v}
        if "fma3" in names:
            names.add("fma")
        if "asimd" in names:
            names.add("neon")
        return names
    return set()


def flops_per_cycle(flags: set[str], cpu_name: str = "", machine: str = "") -> tuple[int | None, str]:
    """float32 FLOPs per cycle per core and the ISA it was derived from (see module doc).

    >>> flops_per_cycle({"avx2", "fma"})
    (32, 'AVX2+FMA3')
    """
    flags = {f.lower() for f in flags}
    if "avx512f" in flags:
        return 64, "AVX-512F"
    if "avx2" in flags and ("fma" in flags or "fma3" in flags):
        return 32, "AVX2+FMA3"
    if "avx" in flags:
        return 16, "AVX"
    if "sse2" in flags or machine.lower() in ("x86_64", "amd64"):
        return 8, "SSE2"
    if "neon" in flags or "asimd" in flags or machine.lower() in ("arm64", "aarch64"):
        if "apple" in cpu_name.lower():
            return 32, "NEON (Apple M-series, 4 FMA pipes)"
        return 16, "NEON"
    return None, "unknown"


def _blas_info() -> tuple[str, int | None]:
    """(library description, thread count) of the BLAS NumPy loaded."""
    try:
        from threadpoolctl import threadpool_info

        for pool in threadpool_info():
            if pool.get("user_api") == "blas":
                name = f"{pool.get('internal_api')} {pool.get('version') or ''}".strip()
                return name, pool.get("num_threads")
    except Exception:  # threadpoolctl missing or failing: fall back to NumPy's build config
        pass
    name = "unknown"
    try:
        config = np.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        name = f"{blas.get('name', 'unknown')} {blas.get('version', '')}".strip()
    except Exception:
        pass
    # OpenBLAS answers through its C API (tinytorch.core.threads); other BLAS libraries only
    # through the environment variables that configured them.
    threads = get_num_threads()
    for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
        if threads is None and _int_or_none(os.environ.get(var)):
            threads = _int_or_none(os.environ[var])
    return name, threads


# ------------------------------------------------------------------------------ measurement


def _best_time(fn: Callable[[], object], repeats: int, warmup: int = 1,
               clock: Callable[[], float] = time.perf_counter) -> float:
    """The shortest of ``repeats`` timed calls after ``warmup`` untimed ones: a ceiling is what
    the machine can do, and interference only ever makes a run slower."""
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeats):
        start = clock()
        fn()
        best = min(best, clock() - start)
    return best


def measure_gemm_peak(n: int = 2048, repeats: int = 5) -> float:
    """Best float32 GEMM rate of ``repeats`` in GFLOP/s for n x n @ n x n (2·n³ FLOPs, ``out=``).

    >>> measure_gemm_peak(n=128, repeats=1) > 0
    True
    """
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    c = np.empty((n, n), dtype=np.float32)
    seconds = _best_time(lambda: np.matmul(a, b, out=c), repeats)
    return 2 * n**3 / seconds / 1e9


#: bytes moved per element, in units of the element size, for each STREAM kernel
STREAM_ARRAYS_MOVED = {"copy": 2, "scale": 2, "add": 3, "triad": 5}


def measure_bandwidth(array_bytes: int, repeats: int = 5) -> dict[str, float]:
    """STREAM copy/scale/add/triad rates in GB/s on float64 arrays of ``array_bytes`` each
    (each the best of ``repeats``, as STREAM reports).

    >>> sorted(measure_bandwidth(1 << 20, repeats=1))
    ['add', 'copy', 'scale', 'triad']
    """
    n = max(array_bytes // 8, 1024)
    a = np.full(n, 1.0)  # np.full touches every page, so no page faults inside the timings
    b = np.full(n, 2.0)
    c = np.full(n, 0.0)
    s = 3.0

    def triad():
        np.multiply(c, s, out=a)
        np.add(a, b, out=a)

    kernels = {
        "copy": lambda: np.copyto(c, a),
        "scale": lambda: np.multiply(c, s, out=b),
        "add": lambda: np.add(a, b, out=c),
        "triad": triad,
    }
    rates = {}
    for name, fn in kernels.items():
        seconds = _best_time(fn, repeats)
        rates[name] = STREAM_ARRAYS_MOVED[name] * n * 8 / seconds / 1e9
    return rates


# ------------------------------------------------------------------------------ cache


def cache_path() -> Path:
    """Where measurements are cached: ``$TINYTORCH_CACHE_DIR/hardware.json`` (default
    ``~/.cache/tinytorch/hardware.json``), one entry per CPU, BLAS and thread count.

    >>> cache_path().name
    'hardware.json'
    """
    root = os.environ.get("TINYTORCH_CACHE_DIR")
    return (Path(root) if root else Path.home() / ".cache" / "tinytorch") / "hardware.json"


def _cache_key(cpu_name: str, blas: str, threads: int | None) -> str:
    return f"{cpu_name} | {blas} | threads={threads}"


def _read_cache(path: Path, max_age_s: float | None = None) -> dict[str, Any]:
    """The cached entries (only those younger than ``max_age_s`` and not contended, if given)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != CACHE_VERSION:
        return {}
    machines = data.get("machines", {})
    if max_age_s is None:
        return machines
    now = time.time()
    return {k: v for k, v in machines.items() if isinstance(v, dict) and not v.get("contended")
            and now - float(v.get("measured_unix", 0)) <= max_age_s}


def _write_cache(path: Path, key: str, entry: dict[str, Any]) -> None:
    machines = _read_cache(path)
    machines[key] = entry
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"version": CACHE_VERSION, "machines": machines}, indent=2))
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home must not break hardware detection


# ------------------------------------------------------------------------------ entry point


def _platform_info(system: str) -> dict[str, Any]:
    if system == "Linux":
        return _linux_info()
    if system == "Darwin":
        return _macos_info()
    if system == "Windows":
        return _windows_info()
    return {}


def get_hardware_spec(quick: bool = False, refresh: bool = False) -> HardwareSpec:
    """Describe this machine and measure its GEMM peak and memory bandwidth.

    Args:
        quick: return the cached measurement if there is one, else a small measurement
            (< 1 s) marked ``quick=True``; quick results are cached apart and never stand in
            for a full measurement.
        refresh: ignore the cache and measure again (the full measurement takes a few seconds).

    Ceilings are the best of several runs; a measurement during which other processes were busy
    is marked ``contended`` (with a ``warning``) and not cached; cached entries expire after
    ``CACHE_MAX_AGE_S``.

    Returns:
        a ``HardwareSpec``; the same report is ``tito performance hardware``.

    >>> spec = get_hardware_spec(quick=True)
    >>> spec.quick or spec.from_cache
    True
    >>> sorted(spec.to_dict())[:3]
    ['architecture', 'blas', 'blas_threads']
    """
    import psutil

    system = platform.system()
    machine = platform.machine()
    info = _platform_info(system)
    flags = set(info.get("flags") or ()) | _numpy_cpu_flags()
    cpu_name = info.get("cpu_name") or platform.processor() or machine or "unknown CPU"
    physical = info.get("physical_cores") or psutil.cpu_count(logical=False)
    logical = info.get("logical_cores") or psutil.cpu_count(logical=True)
    memory = info.get("memory_bytes") or psutil.virtual_memory().total
    freq = info.get("frequency_ghz")
    freq_source = info.get("frequency_source")
    if freq is None:
        f = psutil.cpu_freq()
        if f is not None and (f.max or f.current):
            freq = (f.max or f.current) / 1000
            freq_source = "psutil.cpu_freq()"
    fpc, isa = flops_per_cycle(flags, cpu_name, machine)
    theoretical = physical * freq * fpc if (physical and freq and fpc) else None
    blas, threads = _blas_info()

    key = _cache_key(cpu_name, blas, threads)
    path = cache_path()
    machines = {} if refresh else _read_cache(path, CACHE_MAX_AGE_S)
    cached = machines.get(key) or (machines.get(key + " | quick") if quick else None)
    llc = info.get("l3_bytes") or info.get("l2_bytes") or 8 * 1024**2
    if cached is not None:
        measured = dict(cached, from_cache=True)
    else:
        with ContentionProbe() as probe:
            if quick:
                measured = {
                    "measured_peak_gflops": measure_gemm_peak(n=512, repeats=3),
                    "stream_gbs": measure_bandwidth(32 * 1024**2, repeats=2),
                    "gemm_size": 512, "stream_array_bytes": 32 * 1024**2, "quick": True,
                }
            else:
                array_bytes = max(4 * llc, 64 * 1024**2)
                # One size, the one reported: a maximum over several sizes would report one
                # size's rate under another's name and not be what measure_gemm_peak returns.
                measured = {
                    "measured_peak_gflops": measure_gemm_peak(n=GEMM_SIZE, repeats=GEMM_REPEATS),
                    "stream_gbs": measure_bandwidth(array_bytes, repeats=5),
                    "gemm_size": GEMM_SIZE, "stream_array_bytes": array_bytes, "quick": False,
                }
        measured.update(measured_at=time.strftime("%Y-%m-%dT%H:%M:%S"), measured_unix=time.time(),
                        contended=probe.result["contended"], contention=probe.result)
        if not measured["contended"]:  # quick estimates are kept apart from full measurements
            _write_cache(path, key + (" | quick" if measured["quick"] else ""), measured)
    return HardwareSpec(
        cpu_name=cpu_name, platform=f"{system} {platform.release()}", architecture=machine,
        physical_cores=physical, logical_cores=logical, frequency_ghz=freq,
        frequency_source=freq_source, memory_bytes=memory, l1d_bytes=info.get("l1d_bytes"),
        l2_bytes=info.get("l2_bytes"), l3_bytes=info.get("l3_bytes"), blas=blas,
        blas_threads=threads, isa=isa, flops_per_cycle=fpc, theoretical_peak_gflops=theoretical,
        measured_peak_gflops=measured["measured_peak_gflops"],
        memory_bandwidth_gbs=measured["stream_gbs"]["copy"], stream_gbs=measured["stream_gbs"],
        gemm_size=measured["gemm_size"], stream_array_bytes=measured["stream_array_bytes"],
        quick=measured["quick"], from_cache=measured.get("from_cache", False),
        measured_at=measured["measured_at"], measured_unix=measured["measured_unix"],
        contended=measured["contended"], contention=measured["contention"],
    )


if __name__ == "__main__":  # pragma: no cover
    print(json.dumps(get_hardware_spec(refresh="--refresh" in sys.argv).to_dict(), indent=2))
