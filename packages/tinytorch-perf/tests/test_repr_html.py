"""Notebooks: ProfileResult, OpCount (a FLOP count), TraceResult and HardwareSpec show as tables."""

from __future__ import annotations

import re

from tinytorch.core import nn, randn
from tinytorch.perf import FLOPsCounter, ModelProfiler
from tinytorch.perf.hardware import HardwareSpec


def cells(html: str) -> list[list[str]]:
    return [re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row) for row in re.findall(r"<tr>(.*?)</tr>", html)]


def test_profile_result_table_in_html_is_the_text_tables_content():
    result = ModelProfiler(nn.Sequential(nn.Linear(16, 8), nn.ReLU()), randn(4, 16), name="mlp").profile(
        repeats=1, warmup=0)
    rows = cells(result._repr_html_())
    header, body = rows[0], rows[1:]
    assert header[:4] == ["layer", "type", "output", "params"] and header[-1] == "bound"
    assert [r[0] for r in body] == [layer.name for layer in result.layers] + ["total"]
    linear = body[[r[0] for r in body].index("0")]
    assert linear[3] == "136" and linear[5] == f"{result.layers[[l.name for l in result.layers].index('0')].flops / 1e6:,.2f}"
    assert "<caption>mlp: input (4, 16)" in result._repr_html_()


def test_flop_count_and_trace_tables():
    count, _ = FLOPsCounter().conv2d((3, 8, 8), 4, kernel_size=3, padding=1)
    row = cells(count._repr_html_())[1]
    assert row == [f"{count.flops:,}", f"{count.matmul_flops:,}", f"{count.elementwise_flops:,}",
                   f"{count.bytes:,}", f"{count.intensity:.2f}"]
    trace = FLOPsCounter().trace(nn.Sequential(nn.Linear(8, 4), nn.ReLU()), randn(2, 8), backward=True)
    rows = cells(trace._repr_html_())
    assert rows[1][:3] == ["0", "Linear", "128"] and rows[-1][0] == "total"
    assert rows[-1][4] == f"{trace.backward.flops:,}"


def test_hardware_spec_table_says_when_the_measurement_was_contended():
    spec = HardwareSpec(cpu_name="Test CPU <x>", platform="Linux", architecture="x86_64", physical_cores=2,
                        logical_cores=2, frequency_ghz=3.0, frequency_source="cpuinfo", memory_bytes=8 * 1024**3,
                        l1d_bytes=32 * 1024, l2_bytes=1024**2, l3_bytes=None, blas="openblas", blas_threads=2,
                        isa="avx2", flops_per_cycle=32, theoretical_peak_gflops=192.0, measured_peak_gflops=120.0,
                        memory_bandwidth_gbs=15.0, contended=True,
                        contention={"others_cores": 1.2, "own_cpu_per_wall": 0.8, "load_1min": 3.5,
                                                "contended": True})
    html = spec._repr_html_()
    rows = dict(r for r in cells(html)[1:])
    assert rows["CPU"] == "Test CPU &lt;x&gt;" and rows["ridge point"] == "8.00 FLOP/byte"
    assert rows["measured peak"].startswith("120.0 GFLOP/s") and rows["contention"].startswith("other processes 1.20")
    assert "warning: contended: other processes used 1.20 cores while measuring" in html
