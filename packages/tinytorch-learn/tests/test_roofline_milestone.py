"""`tito learn milestone roofline`: the student's kernels timed beside the library's and placed
on the roofline. No test depends on how fast this machine is: the timing tests run on a clock
that counts the Python lines executed, which is the same on every run and every machine, and
slower for a kernel that loops in Python."""

from __future__ import annotations

import json
import sys

import pytest
from click.testing import CliRunner
from solutions import reference_file

from tinytorch.learn import load_curriculum
from tinytorch.learn.milestones import roofline
from tinytorch.perf import RooflineModel
from tinytorch.vision import functional as VF
from tito.main import cli

COURSE = load_curriculum()
ROOF = RooflineModel(peak_gflops=50.0, bandwidth_gbs=10.0)

# An honest student's im2col: right (it passes its checks), but one Python iteration per output
# pixel and kernel tap where the library makes one strided copy.
LOOPING_IM2COL = '''

def im2col(xp, kernel, out_hw, stride, dilation):
    (kh, kw), (ho, wo), (sh, sw), (dh, dw) = kernel, out_hw, stride, dilation
    n, c = xp.shape[0], xp.shape[3]
    cols = np.empty((n, ho, wo, kh, kw, c), dtype=xp.dtype)
    for oh in range(ho):
        for ow in range(wo):
            for i in range(kh):
                for j in range(kw):
                    cols[:, oh, ow, i, j] = xp[:, oh * sh + i * dh, ow * sw + j * dw]
    return cols.reshape(n * ho * wo, kh * kw * c)
'''


class LineClock:
    """A clock whose time is the number of Python lines executed while it is active."""

    def __init__(self):
        self.lines = 0

    def __call__(self) -> int:
        return self.lines

    def _trace(self, frame, event, arg):
        if event == "line":
            self.lines += 1
        return self._trace

    def __enter__(self):
        sys.settrace(self._trace)
        return self

    def __exit__(self, *exc):
        sys.settrace(None)


def _workspace(path, modules, extra=None):
    for m in modules:
        (path / m.filename).write_text(reference_file(m) + (extra or {}).get(m.name, ""))
    return path


def test_a_kernel_that_loops_in_python_is_named_slower_and_the_library_s_own_code_is_as_fast(tmp_path):
    with_kernels = [m for m in COURSE.modules if any(e.kernel for e in m.exercises)]
    _workspace(tmp_path, with_kernels, {"conv2d": LOOPING_IM2COL})
    reference_im2col = VF._im2col
    with LineClock() as clock:
        result = roofline(tmp_path, repeats=1, roof=ROOF, clock=clock)
    assert VF._im2col is reference_im2col  # every substitution undone
    kernels = {k["exercise"]: k for k in result["kernels"]}
    assert sorted(kernels) == sorted(e.qualified for m in with_kernels for e in m.exercises if e.kernel)

    slow = kernels.pop("conv2d/im2col")
    assert slow["your_seconds"] > 10 * slow["reference_seconds"]  # lines run, not seconds: exact
    assert slow["sentence"].startswith(f"your im2col is {slow['ratio']:.1f}x slower than the library's: "
                                       "it only moves data")
    # the figures are computed: 0 FLOPs, the padded input read once and the patch matrix written once
    assert slow["flops"] == 0 and slow["bytes"] == 4 * (16 * 30 * 30 * 16 + 16 * 28 * 28 * 9 * 16)
    assert slow["your_gbs"] == slow["bytes"] / slow["your_seconds"] / 1e9
    assert f"at {slow['your_gbs']:.1f} GB/s where the library's reaches {slow['reference_gbs']:.1f} GB/s" \
        in slow["sentence"]

    for name, k in kernels.items():  # the library's own code as the student's: the same lines
        assert k["ratio"] == 1.0, name
        assert "is as fast as the library's (1.00x its time)" in k["sentence"], k["sentence"]
        assert k["bytes"] > 0
        assert ("it only moves data" in k["sentence"]) == (k["flops"] == 0), k["sentence"]
    softmax = kernels["tensor-ops/softmax"]
    assert softmax["flops"] == 5 * 256 * 1024 and softmax["intensity"] == softmax["flops"] / softmax["bytes"]
    assert "memory-bound (0.62 FLOP/B, left of the ridge at 5.0)" in softmax["sentence"]
    matmul = kernels["autograd/matmul_backward"]
    assert matmul["flops"] == 2 * 2 * 256 * 512 * 256  # dA and dB: one forward product each
    assert matmul["bound"] == "compute-bound" and "GFLOP/s compute roof" in matmul["sentence"]
    # both implementations of every kernel that does FLOPs are points of the roofline
    with_flops = [k for k in result["kernels"] if k["flops"] > 0]
    assert [p["name"] for p in result["points"]] == [
        f"{k['exercise'].split('/')[1]} ({who})" for k in with_flops for who in ("library", "yours")]


def test_only_passed_kernels_are_timed(tmp_path):
    module = COURSE.module("tensor-ops")
    (tmp_path / module.filename).write_text(reference_file(module, planted="softmax"))
    result = roofline(tmp_path, repeats=1, roof=ROOF, threads=None, plot=tmp_path / "roof.png")
    assert [k["exercise"] for k in result["kernels"]] == ["tensor-ops/log_softmax", "tensor-ops/linear"]
    assert len(result["points"]) == 4 and result["plot"] == str(tmp_path / "roof.png")
    assert (tmp_path / "roof.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def run(*args):
    return CliRunner().invoke(cli, ["learn", *args])


def test_the_cli_roofline_needs_a_passed_kernel_and_says_which_have_one(tmp_path):
    _workspace(tmp_path, [COURSE.module("flops")])  # linear_flops passes, but is no kernel
    r = run("milestone", "roofline", "--dir", str(tmp_path), "--plot", str(tmp_path / "r.png"))
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert r.exit_code == 1 and len(lines) == 1 and "Traceback" not in r.output, r.output
    assert "no passed exercise has a kernel to time; these do: tensor-ops/softmax" in lines[0]
    bad = run("milestone", "roofline", "--dir", str(tmp_path), "--threads", "0")
    assert bad.exit_code == 2 and "Invalid value for --threads" in bad.output


@pytest.mark.parametrize("as_json", [False, True])
def test_the_cli_roofline_prints_a_sentence_per_kernel(tmp_path, as_json):
    _workspace(tmp_path, [COURSE.module("conv2d")])
    plot = tmp_path / "roof.svg"
    r = run("milestone", "roofline", "--dir", str(tmp_path), "--repeats", "1", "--plot", str(plot),
            *(["--json"] if as_json else []))
    assert r.exit_code == 0, r.output
    if as_json:
        result = json.loads(r.output)
        assert [k["exercise"] for k in result["kernels"]] == ["conv2d/im2col"]
        assert result["kernels"][0]["sentence"].startswith("your im2col is ")
        assert result["plot"] == str(plot) and plot.read_text().lstrip().startswith("<?xml")
        return
    lines = r.output.splitlines()
    assert lines[0].startswith("this machine's roofline: ") and "GFLOP/s compute" in lines[0]
    assert lines[2].lstrip().startswith("conv2d/im2col") and "library" in lines[2] and "yours" in lines[2]
    assert lines[3].lstrip().startswith("your im2col is ") and "it only moves data" in lines[3]
    assert lines[-1] == f"roofline: {plot}"


def test_a_kernel_call_that_never_runs_its_target_is_refused():
    from dataclasses import replace

    from tinytorch.core import kernels
    from tinytorch.learn.curriculum import Kernel
    from tinytorch.learn.milestones import time_kernel

    softmax = COURSE.exercise("tensor-ops", "softmax")
    astray = replace(softmax, kernel=Kernel("np.exp(x)", "OpCount(bytes=nbytes(x, out))", {"x": "array(4, 5)"}))
    with pytest.raises(ValueError, match="never runs tinytorch.core.kernels:softmax, so it would time the library twice"):
        time_kernel(astray, kernels.softmax, repeats=1)
