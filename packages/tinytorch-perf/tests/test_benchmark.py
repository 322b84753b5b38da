"""The inference benchmark: scenarios on a fake clock, sizes, the report, comparisons, the CLI."""

from __future__ import annotations

import json
import platform

import numpy as np
import pytest
from click.testing import CliRunner

from tinytorch.core import Tensor, nn
from tinytorch.core.checkpoint import save_model_state
from tinytorch.perf import benchmark as B
from tito.main import cli


class FakeClock:
    """Seconds that pass only when a query says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class ScriptedModel(nn.Module):
    """A model whose k-th call takes ``latencies[k]`` seconds of the fake clock."""

    def __init__(self, clock: FakeClock, latencies) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 2)
        self.clock, self.latencies, self.calls = clock, list(latencies), 0

    def forward(self, x):
        self.clock.now += self.latencies[self.calls % len(self.latencies)]
        self.calls += 1
        return self.linear(x)


def _inputs(idx):
    return Tensor(np.ones((len(idx), 4), dtype=np.float32))


# ------------------------------------------------------------------------------ percentiles


def test_percentile_is_loadgens_index_floor_n_p():
    # n = 7: p50 -> index floor(3.5) = 3; p90 -> floor(6.3) = 6; p0 -> the minimum
    values = [70, 10, 50, 30, 20, 60, 40]
    assert B.percentile(values, 0.5) == 40
    assert B.percentile(values, 0.9) == 70
    assert B.percentile(values, 0.0) == 10
    # n = 4: the upper middle value, not the interpolated 2.5 of np.percentile/np.median
    assert B.percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 3.0
    # n = 20: p90 -> index 18, p99 -> index floor(19.8) = 19
    twenty = list(range(100, 120))
    assert B.percentile(twenty, 0.9) == 118 and B.percentile(twenty, 0.99) == 119
    with pytest.raises(ValueError, match="p must be in"):
        B.percentile(values, 1.0)
    with pytest.raises(ValueError, match="no latencies"):
        B.percentile([], 0.5)


def test_single_stream_percentiles_on_a_fake_clock():
    # 20 queries, 1..20 ms in a scrambled order; one slow outlier of 500 ms replaces 20 ms.
    ms = [7, 3, 500, 12, 1, 19, 5, 14, 9, 2, 17, 11, 6, 15, 4, 18, 8, 13, 10, 16]
    clock = FakeClock()
    latencies = [m / 1e3 for m in ms]
    calls = []

    def query(k):
        calls.append(k)
        clock.now += latencies[k]

    result = B.run_single_stream(query, min_queries=20, min_duration_s=0.0, clock=clock)
    lat = result["latency_s"]
    assert result["queries"] == 20 and calls == list(range(20))
    assert lat["p50"] == pytest.approx(0.011)   # sorted[10]
    assert lat["p90"] == pytest.approx(0.019)   # sorted[18]: not the mean (35.5 ms)
    assert lat["p99"] == pytest.approx(0.500)   # sorted[19]
    assert lat["mean"] == pytest.approx(sum(ms) / 20 / 1e3)
    assert lat["min"] == pytest.approx(0.001) and lat["max"] == pytest.approx(0.5)
    assert result["duration_s"] == pytest.approx(sum(ms) / 1e3)
    assert result["queries_per_s"] == pytest.approx(20 / (sum(ms) / 1e3))


def test_warmup_queries_are_not_timed():
    clock = FakeClock()
    seen = []

    def query(k):
        seen.append(k)
        clock.now += 100.0 if len(seen) <= 3 else 1.0  # three slow warm-up calls

    result = B.run_single_stream(query, 5, 0.0, warmup_queries=3, clock=clock)
    assert len(seen) == 8 and result["queries"] == 5 and result["latency_s"]["max"] == 1.0


@pytest.mark.parametrize("min_queries,min_duration,expected", [
    (3, 10.0, 11),   # duration binds: queries issued at t = 0, 1, ..., 10
    (20, 5.0, 20),   # count binds
    (4, 3.5, 5),     # issued at 0..4: the first issued at >= 3.5 s is the fifth
    (1, 0.0, 1),
])
def test_minimum_count_and_duration_are_both_honoured(min_queries, min_duration, expected):
    clock = FakeClock()

    def query(k):
        clock.now += 1.0

    result = B.run_single_stream(query, min_queries, min_duration, clock=clock)
    assert result["queries"] == expected
    # The last query was issued at or after min_duration, and at least min_queries ran.
    assert result["queries"] >= min_queries and result["queries"] - 1 >= min_duration


def test_offline_throughput_arithmetic():
    clock = FakeClock()
    batch_seconds = [2.0, 3.0, 5.0, 4.0]

    def batch(k):
        clock.now += batch_seconds[k]
        return 8

    # 20 samples at least: three batches of 8 (24 samples) in 2 + 3 + 5 = 10 s
    result = B.run_offline(batch, min_samples=20, min_duration_s=0.0, clock=clock)
    assert result["queries"] == 3 and result["samples"] == 24
    assert result["duration_s"] == pytest.approx(10.0)
    assert result["samples_per_s"] == pytest.approx(2.4)
    assert result["latency_s"]["p50"] == 3.0 and result["latency_s"]["max"] == 5.0
    # the duration minimum adds the fourth batch (issued at t = 10)
    clock.now = 0.0
    result = B.run_offline(batch, min_samples=1, min_duration_s=10.0, clock=clock)
    assert result["samples"] == 32 and result["samples_per_s"] == pytest.approx(32 / 14)


# ------------------------------------------------------------------------------ run_benchmark


def _target(model, evaluate=None, checkpoint=None, n=10):
    return B.BenchmarkTarget("scripted", model, _inputs, num_samples=n, evaluate=evaluate,
                             checkpoint=checkpoint)


def test_run_benchmark_on_a_fake_clock_feeds_one_sample_then_batches():
    clock = FakeClock()
    shapes = []

    class Model(ScriptedModel):
        def forward(self, x):
            shapes.append(x.shape)
            return super().forward(x)

    model = Model(clock, [0.004, 0.001, 0.002, 0.003])
    settings = B.BenchmarkSettings(min_queries=8, min_duration_s=0.0, batch_size=4, warmup_queries=2)

    def evaluate(m, limit):
        return {"metric": "accuracy", "value": 0.75, "higher_is_better": True, "samples": limit}

    report = B.run_benchmark(_target(model, evaluate), settings, hardware=None, clock=clock)
    assert shapes[:10] == [(1, 4)] * 10 and shapes[10:] == [(4, 4)] * 4  # 2 + 8; 2 + 2 batches
    ss = report.single_stream
    assert ss["queries"] == 8
    # calls 2..9 (after two warm-ups): 2, 3, 4, 1, 2, 3, 4, 1 ms -> sorted[4] = 3 ms, sorted[7] = 4 ms
    assert ss["latency_s"]["p50"] == pytest.approx(0.003) and ss["latency_s"]["p90"] == pytest.approx(0.004)
    off = report.offline
    # calls 10, 11 warm up; 12, 13 timed: 4 + 1 ms for 8 samples
    assert off["samples"] == 8 and off["queries"] == 2 and off["batch_size"] == 4
    assert off["samples_per_s"] == pytest.approx(8 / 0.005)
    assert report.accuracy["value"] == 0.75 and report.accuracy["samples"] is None
    assert report.settings["min_queries"] == 8 and report.machine is None


def test_model_mode_is_restored_and_accuracy_runs_in_eval_mode():
    clock = FakeClock()
    model = ScriptedModel(clock, [0.001])
    model.train()
    modes = []
    B.run_benchmark(_target(model, lambda m, n: modes.append(m.training) or {"metric": "a", "value": 1}),
                    B.BenchmarkSettings(min_queries=2, min_duration_s=0, warmup_queries=0),
                    hardware=None, clock=clock)
    assert modes == [False] and model.training


def test_scenarios_setting_runs_only_what_it_names():
    clock = FakeClock()
    report = B.run_benchmark(_target(ScriptedModel(clock, [0.001])),
                             B.BenchmarkSettings(scenarios=("offline",), min_queries=4, min_duration_s=0,
                                                 batch_size=2, accuracy=False),
                             hardware=None, clock=clock)
    assert report.single_stream is None and report.offline["samples"] == 4 and report.accuracy is None


@pytest.mark.parametrize("kwargs,expected", [
    ({"scenarios": ("server",)}, "scenarios must be one or more of single-stream, offline"),
    ({"batch_size": 0}, "batch_size must be an integer >= 1, got 0"),
    ({"min_queries": 2.5}, "min_queries must be an integer >= 1, got 2.5"),
    ({"min_duration_s": float("nan")}, "min_duration_s must be a finite number >= 0"),
    ({"accuracy_limit": 0}, "accuracy_limit must be a positive integer or None, got 0"),
    ({"threads": 0}, "threads must be a positive integer or None, got 0"),
])
def test_bad_settings_are_named(kwargs, expected):
    with pytest.raises(ValueError) as err:
        B.BenchmarkSettings(**kwargs)
    assert expected in str(err.value)


def test_a_busy_machine_is_flagged(monkeypatch):
    from tinytorch.perf import hardware

    class AlwaysBusy(hardware.ContentionProbe):
        def __init__(self):
            super().__init__(threshold_cores=-1.0)  # any CPU time of others counts as contention

    monkeypatch.setattr(hardware, "ContentionProbe", AlwaysBusy)
    clock = FakeClock()
    report = B.run_benchmark(_target(ScriptedModel(clock, [0.001])),
                             B.BenchmarkSettings(min_queries=2, min_duration_s=0), hardware=None,
                             clock=clock)
    assert report.contention["contended"] and "other processes used" in report.warning
    quiet = B.BenchmarkReport("q", {}, {}, contention={"contended": False})
    assert quiet.warning is None and B._contention_warning({"contended": False}) is None


# ------------------------------------------------------------------------------ sizes


def test_memory_bytes_are_the_parameters_and_buffers():
    model = nn.Sequential(nn.Linear(3, 5), nn.BatchNorm1d(5), nn.Linear(5, 2, bias=False))
    sizes = B.model_memory_bytes(model)
    params = 3 * 5 + 5 + 5 + 5 + 5 * 2            # linear, BN weight and bias, linear (no bias)
    assert sizes["parameters"] == params
    assert sizes["parameter_bytes"] == sum(p.data.nbytes for p in model.parameters()) == 4 * params
    buffers = sum(b.data.nbytes for b in model.buffers())
    assert buffers > 0 and sizes["buffer_bytes"] == buffers
    assert sizes["memory_bytes"] == 4 * params + buffers
    tied = nn.Sequential(nn.Linear(4, 4, bias=False), nn.Linear(4, 4, bias=False))
    tied[1].weight = tied[0].weight  # a shared weight is held once
    assert B.model_memory_bytes(tied)["parameter_bytes"] == 64


def test_disk_bytes_of_weights_and_of_a_training_checkpoint(tmp_path):
    from tinytorch.core import io

    model = nn.Linear(10, 10)
    save_model_state(tmp_path / "w.safetensors", model)
    d = B.disk_bytes(tmp_path / "w.safetensors")
    assert d["disk_model_bytes"] == 440 and d["disk_bytes"] == (tmp_path / "w.safetensors").stat().st_size
    # optimizer state beside the model: the file grows, the model's tensors do not
    io.save({"model.weight": model.weight.data, "model.bias": model.bias.data,
             "optimizer.state.0.m": np.zeros((10, 10), np.float32)}, tmp_path / "t.safetensors")
    d = B.disk_bytes(tmp_path / "t.safetensors")
    assert d["disk_model_bytes"] == 440 and d["disk_bytes"] > 840
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "model.safetensors").write_bytes(b"x" * 100)
    (tmp_path / "dir" / "config.json").write_bytes(b"{}")
    assert B.disk_bytes(tmp_path / "dir") == {"disk_bytes": 102, "disk_model_bytes": 100}


_PEAK_SCRIPT = """
import numpy as np
from tinytorch.perf.benchmark import PeakRSS
probe = PeakRSS()
probe.reset()
before = probe.peak_bytes()
block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
during = probe.peak_bytes()
del block
probe.reset()
print(probe.method.startswith("Linux"), before, during, probe.peak_bytes())
"""


@pytest.mark.skipif(platform.system() != "Linux", reason="VmHWM reset is Linux-only")
def test_peak_rss_is_reset_and_sees_a_new_allocation():
    # A fresh interpreter: in this one, memory freed by earlier tests stays resident (glibc keeps
    # it, see tinytorch.core.memory) and a new array may reuse it without raising the RSS.
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT], capture_output=True, text=True,
                         check=True).stdout.split()
    linux, before, during, after = out[0] == "True", *map(int, out[1:])
    assert linux
    assert during - before >= 60 * 2**20
    assert after < during - 32 * 2**20  # the old peak is forgotten


# ------------------------------------------------------------------------------ reports


def _report(name, p90, throughput, accuracy, params=100, disk=None):
    return B.BenchmarkReport(
        name=name, settings=B.BenchmarkSettings().to_dict(),
        model={"parameters": params, "memory_bytes": params * 4, "disk_bytes": disk,
               "disk_model_bytes": disk},
        single_stream={"latency_s": {"p50": p90 / 2, "p90": p90, "p99": p90 * 2}},
        offline={"samples_per_s": throughput},
        accuracy={"metric": "accuracy", "value": accuracy, "higher_is_better": True},
        memory={"peak_rss_bytes": 50e6})


def test_report_json_round_trip_and_schema_checks(tmp_path):
    clock = FakeClock()
    report = B.run_benchmark(_target(ScriptedModel(clock, [0.002, 0.001])),
                             B.BenchmarkSettings(min_queries=3, min_duration_s=0, batch_size=2),
                             hardware=None, clock=clock)
    path = tmp_path / "r.json"
    text = report.to_json(path)
    data = json.loads(path.read_text())
    assert data["schema"] == B.SCHEMA and data["schema_version"] == B.SCHEMA_VERSION
    again = B.read_report(path)
    assert again.to_dict() == json.loads(text) == report.to_dict()  # nothing lost or added
    assert again.single_stream["latency_s"]["p90"] == report.single_stream["latency_s"]["p90"]
    data["schema_version"] = B.SCHEMA_VERSION + 1
    (tmp_path / "v2.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match=f"schema version {B.SCHEMA_VERSION + 1}; this version"):
        B.read_report(tmp_path / "v2.json")
    (tmp_path / "other.json").write_text(json.dumps({"schema": "something else"}))
    with pytest.raises(ValueError, match="is not a TinyTorch benchmark report"):
        B.read_report(tmp_path / "other.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match="is not JSON"):
        B.read_report(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="no such file"):
        B.read_report(tmp_path / "missing.json")


def test_compare_ratios_against_hand_values():
    a = _report("a", p90=0.002, throughput=100.0, accuracy=0.90, disk=4_000_000)
    b = _report("b", p90=0.001, throughput=250.0, accuracy=0.88, disk=1_000_000)
    c = _report("c", p90=0.004, throughput=50.0, accuracy=0.45, params=25)
    rows = {r.metric: r for r in B.compare_reports([a, b, c])}
    assert rows["accuracy"].values == [0.90, 0.88, 0.45]
    assert rows["accuracy"].ratios == pytest.approx([1.0, 0.88 / 0.90, 0.5])
    assert rows["SingleStream p90 latency"].values == pytest.approx([2.0, 1.0, 4.0])  # ms
    assert rows["SingleStream p90 latency"].ratios == pytest.approx([1.0, 0.5, 2.0])
    assert rows["SingleStream p99 latency"].ratios == pytest.approx([1.0, 0.5, 2.0])
    assert rows["Offline throughput"].ratios == pytest.approx([1.0, 2.5, 0.5])
    assert rows["parameters"].ratios == pytest.approx([1.0, 1.0, 0.25])
    assert rows["checkpoint on disk"].values == [4.0, 1.0, None]
    assert rows["checkpoint on disk"].ratios == [1.0, 0.25, None]  # missing: no ratio, no guess
    with pytest.raises(ValueError, match="two or more reports"):
        B.compare_reports([a])


def test_comparison_table_names_the_baseline():
    from rich.console import Console

    a = _report("a", 0.002, 100.0, 0.9)
    b = _report("b", 0.001, 250.0, 0.9)
    console = Console(width=150, record=True)
    console.print(B.comparison_table([a, b], ["fp32", "int8"], width=150))
    text = console.export_text()
    assert "int8 / fp32" in text and "baseline" in text and "2.500x" in text and "0.500x" in text


# ------------------------------------------------------------------------------ the CLI


class _EntryPoint:
    def __init__(self, name, fn):
        self.name, self.value, self._fn = name, f"tests:{name}", fn

    def load(self):
        return self._fn


def _fake_loader(path, limit):
    """Recognizes safetensors files whose metadata kind is 'test.linear'."""
    from tinytorch.core import io
    from tinytorch.core.checkpoint import load_model_state

    if io.load_metadata(path).get("kind") != "test.linear":
        return None
    state, _ = load_model_state(path)
    model = nn.Linear(4, 2)
    model.load_state_dict(state)
    return {"name": "linear", "model": model, "inputs": _inputs, "num_samples": 8,
            "evaluate": lambda m, n: {"metric": "accuracy", "value": 0.5, "higher_is_better": True,
                                      "dataset": "ones", "samples": n or 8},
            "checkpoint": path, "description": "a test model"}


@pytest.fixture
def fake_loader(monkeypatch):
    monkeypatch.setattr(B, "_loaders", lambda: {"test": _EntryPoint("test", _fake_loader)})


def run(*args):
    return CliRunner().invoke(cli, ["performance", *args])


def test_benchmark_cli_writes_a_report_and_compare_runs_reads_two(tmp_path, fake_loader):
    ckpt = tmp_path / "linear.safetensors"
    save_model_state(ckpt, nn.Linear(4, 2), {"kind": "test.linear"})
    quick = ["--min-queries", "5", "--min-duration", "0", "--batch-size", "2", "--warmup", "1"]
    r = run("benchmark", str(ckpt), *quick, "--out", str(tmp_path / "a.json"))
    assert r.exit_code == 0, r.output
    assert "SingleStream" in r.output and "Offline" in r.output and "accuracy" in r.output
    report = B.read_report(tmp_path / "a.json")
    assert report.single_stream["queries"] == 5 and report.offline["samples"] == 6  # 3 batches of 2
    assert report.model["parameters"] == 10 and report.model["disk_model_bytes"] == 40
    assert report.accuracy["value"] == 0.5 and report.memory["peak_rss_bytes"] > 0
    assert report.machine["cpu_name"]  # the hardware spec (quick) is recorded
    r = run("benchmark", str(ckpt), *quick, "--scenario", "offline", "--limit", "3", "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["single_stream"] is None and data["accuracy"]["samples"] == 3
    (tmp_path / "b.json").write_text(r.output)
    r = CliRunner().invoke(cli, ["performance", "compare-runs", str(tmp_path / "a.json"),
                                 str(tmp_path / "b.json")], env={"COLUMNS": "160"})
    assert r.exit_code == 0, r.output
    assert "b / a" in r.output and "baseline" in r.output
    r = run("compare-runs", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--json")
    data = json.loads(r.output)
    rows = {row["metric"]: row for row in data["rows"]}
    assert rows["parameters"]["ratios"] == [1.0, 1.0]
    assert rows["SingleStream p90 latency"]["values"][1] is None
    assert "settings scenarios: a ['single-stream', 'offline'], b ['offline']" in data["differences"]
    assert "accuracy samples: a 8, b 3" in data["differences"]


@pytest.mark.parametrize("make,expected", [
    (lambda p: p / "missing.safetensors", "no such file or directory"),
    (lambda p: (p / "notes.txt").write_text("hello") and p / "notes.txt", "is not a checkpoint"),
    (lambda p: save_model_state(p / "other.safetensors", nn.Linear(2, 2), {"kind": "x"})
     or p / "other.safetensors", "that no installed package can benchmark"),
])
def test_benchmark_cli_errors_are_one_line(tmp_path, fake_loader, make, expected):
    r = run("benchmark", str(make(tmp_path)), "--min-queries", "1", "--min-duration", "0")
    assert r.exit_code == 1
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert len(lines) == 1 and expected in lines[0], r.output


@pytest.mark.parametrize("value", ["inf", "nan", "-1"])
def test_min_duration_must_be_finite_and_not_negative(tmp_path, fake_loader, value):
    ckpt = tmp_path / "linear.safetensors"
    save_model_state(ckpt, nn.Linear(4, 2), {"kind": "test.linear"})
    r = run("benchmark", str(ckpt), "--min-duration", value)  # inf would never end
    assert r.exit_code == 2 and "--min-duration" in r.output


def test_compare_runs_errors_are_one_line(tmp_path):
    good = _report("a", 0.002, 100.0, 0.9)
    good.to_json(tmp_path / "a.json")
    data = good.to_dict()
    data["schema_version"] = 0
    (tmp_path / "old.json").write_text(json.dumps(data))
    (tmp_path / "text.json").write_text("not json")
    cases = [([tmp_path / "a.json"], "two or more reports"),
             ([tmp_path / "a.json", tmp_path / "old.json"], "schema version 0"),
             ([tmp_path / "a.json", tmp_path / "gone.json"], "no such file"),
             ([tmp_path / "a.json", tmp_path / "text.json"], "is not JSON")]
    for paths, expected in cases:
        r = run("compare-runs", *map(str, paths))
        assert r.exit_code == 1, r.output
        lines = [line for line in r.output.splitlines() if line.strip()]
        assert len(lines) == 1 and expected in lines[0], r.output


def test_benchmark_refuses_to_overwrite_its_checkpoint(tmp_path, fake_loader):
    ckpt = tmp_path / "linear.safetensors"
    save_model_state(ckpt, nn.Linear(4, 2), {"kind": "test.linear"})
    r = run("benchmark", str(ckpt), "--out", str(ckpt))
    assert r.exit_code != 0 and ckpt.stat().st_size > 0
    assert B.disk_bytes(ckpt)["disk_model_bytes"] == 40  # untouched


def test_quantized_weights_are_counted_beside_the_parameters():
    """An int8 model's integers are buffers, so ``parameters()`` leaves them out: the report counts
    them as quantized weights (an int8 GPT-2 showed 0.9M parameters against 124M, with no word)."""
    from tinytorch.core import nn
    from tinytorch.core.quantization import Int8WeightOnlyConfig, quantize_
    from tinytorch.perf.benchmark import BenchmarkReport, compare_reports, model_memory_bytes

    model = nn.Sequential(nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 4))
    before = model_memory_bytes(model)
    quantize_(model, Int8WeightOnlyConfig())
    after = model_memory_bytes(model)
    assert (before["parameters"], before["quantized_weights"]) == (32 * 16 + 16 + 16 * 4 + 4, 0)
    assert (after["parameters"], after["quantized_weights"]) == (16 + 4, 32 * 16 + 16 * 4)
    rows = {r.metric: r.values for r in compare_reports([BenchmarkReport("f", {}, before),
                                                         BenchmarkReport("q", {}, after)])}
    assert rows["quantized weights"] == [0, 32 * 16 + 16 * 4] and rows["parameters"] == [596, 20]
    floats = {r.metric for r in compare_reports([BenchmarkReport("a", {}, before), BenchmarkReport("b", {}, before)])}
    assert "parameters" in floats and "quantized weights" not in floats  # no row of zeros
