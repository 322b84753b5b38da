"""Every `tito performance` command that prints a time says when it was timed under contention
(issue 22 §2), through core's one ContentionProbe: simulated here, the real machine may be busy."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from perf_standins import FakeProbe

from tinytorch.core import threads
from tinytorch.perf import hardware, profiler
from tito.main import cli


@pytest.fixture
def machine(monkeypatch):
    """Set ``machine(others_cores)``: what the timing probes and the thread policy's probe see."""
    monkeypatch.delenv("TINYTORCH_RANK_THREADS", raising=False)
    monkeypatch.setattr(threads, "physical_cores", lambda: 2)
    monkeypatch.setattr(threads, "_cpus", lambda: 2)
    # the ceilings are not what these tests are about: no real GEMM/STREAM measurement
    monkeypatch.setattr(hardware, "measure_gemm_peak", lambda n=2048, repeats=5: 100.0)
    monkeypatch.setattr(hardware, "measure_bandwidth", lambda array_bytes, repeats=5: {
        "copy": 10.0, "scale": 10.0, "add": 10.0, "triad": 10.0})

    def set_load(others_cores: float) -> None:
        monkeypatch.setattr(profiler, "ContentionProbe", type("P", (FakeProbe,), {"others_cores": others_cores}))
        monkeypatch.setattr(threads, "measure_contention", lambda seconds: {"others_cores": others_cores})

    return set_load


def run(*args):
    return CliRunner().invoke(cli, ["performance", *args])


def test_profile_says_its_times_were_contended(machine, registered_models):
    machine(0.98)
    r = run("profile", "test_cnn", "--repeats", "1", "--warmup", "0")
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())
    assert "1 BLAS thread of 2: other programs keep 0.98 cores busy" in text
    assert "test_cnn: contended: other processes used 0.98 cores while timing (load average 1.48)" in text
    # next to the figure: the note follows the step-time line
    assert text.index("plain step") < text.index("test_cnn: contended: other processes")
    assert "1 BLAS thread" in text[text.index("plain step"):]
    machine(0.05)
    r = run("profile", "test_cnn", "--repeats", "1", "--warmup", "0")
    assert r.exit_code == 0 and "test_cnn: contended" not in r.output and "BLAS thread of" not in r.output
    assert "2 BLAS threads" in " ".join(r.output.split())


def test_profile_json_carries_the_contention(machine, registered_models):
    machine(1.5)
    r = run("profile", "test_cnn", "--repeats", "1", "--warmup", "0", "--json")
    d = json.loads(r.output)
    assert d["contention"]["contended"] and d["contention"]["others_cores"] == 1.5


def test_compare_and_cifar10_mark_each_contended_model(machine, registered_models, monkeypatch):
    machine(0.7)
    r = run("compare", "test_cnn", "test_gpt", "--repeats", "1")
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())
    for name in ("test_cnn", "test_gpt"):
        assert f"{name}: contended: other processes used 0.70 cores while timing" in text
    assert "1 BLAS thread" in text
    r = run("compare", "test_cnn", "--repeats", "1", "--json")
    d = json.loads(r.output)
    assert d["threads"] == 1 and d["models"][0]["contention"]["others_cores"] == 0.7
    machine(0.0)
    r = run("compare", "test_cnn", "--repeats", "1")
    assert r.exit_code == 0 and "test_cnn: contended" not in r.output


def test_roofline_reports_layer_timing_contention(machine, registered_models, tmp_path):
    machine(0.9)
    out = tmp_path / "r.png"
    r = run("roofline", "test_cnn", "--out", str(out), "--repeats", "1")
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())
    assert "test_cnn's layer times: contended: other processes used 0.90 cores" in text
    assert "1 BLAS thread of 2" in text


@pytest.mark.parametrize("command", ["profile", "roofline", "compare", "cifar10"])
def test_bad_threads_is_one_line(command, registered_models):
    args = [command] + (["test_cnn"] if command in ("profile", "roofline") else []) + ["--threads", "0"]
    r = run(*args)
    lines = [l for l in r.output.splitlines() if l.strip()]
    assert r.exit_code != 0 and len(lines) == 1 and "--threads" in lines[0] and "got 0" in lines[0], r.output
