"""`tito learn ...` through click's CliRunner on the real tito group, and as a subprocess."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from solutions import reference_file

from tinytorch.learn import load_curriculum
from tinytorch.learn.milestones import shakespeare
from tinytorch.learn.workspace import STATE_FILE
from tito.main import cli


def run(*args):
    return CliRunner().invoke(cli, ["learn", *args])


def one_error_line(result) -> str:
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:") and "Traceback" not in result.output, result.output
    return lines[0]


def test_list_shows_the_modules_in_phase_order_with_their_targets():
    r = run("list", "--json")
    assert r.exit_code == 0, r.output
    modules = json.loads(r.output)
    phases = [m["phase"] for m in modules]
    assert phases == sorted(phases, key=["foundation", "vision", "language", "systems"].index)
    autograd = next(m for m in modules if m["module"] == "autograd")
    assert {"name": "matmul_backward", "target": "tinytorch.core.ops:MatMulFunction.backward"}.items() <= \
        next(e for e in autograd["exercises"] if e["name"] == "matmul_backward").items()
    text = run("list").output
    assert text.index("autograd") < text.index("conv2d") < text.index("attention") < text.index("flops")
    assert text.index("training") < text.index("data-loading") < text.index("conv2d")
    assert text.index("generation") < text.index("profiling") < text.index("data-parallel") < text.index("quantization")
    im2col = next(e for m in modules if m["module"] == "conv2d" for e in m["exercises"] if e["name"] == "im2col")
    assert im2col["kernel"] and "_im2col  (timed by milestone roofline)" in text


def test_start_writes_stubs_from_the_library_and_never_overwrites_an_edit(tmp_path):
    r = run("start", "autograd", "--dir", str(tmp_path))
    assert r.exit_code == 0 and "written (10 exercises" in r.output, r.output
    path = tmp_path / "autograd.py"
    text = path.read_text()
    assert "def matmul_backward(self, grad):" in text
    assert "forward saved on self: self.a, self.b" in text  # read from MatMulFunction.forward
    assert "raise NotImplementedError('exercise autograd/matmul_backward is not implemented yet')" in text
    assert "np.swapaxes" not in text  # the backward's own code is nowhere in the stub
    assert run("start", "autograd", "--dir", str(tmp_path)).output.startswith(f"{path}: unchanged")
    path.write_text(text + "\n# my work\n")
    line = one_error_line(run("start", "autograd", "--dir", str(tmp_path)))
    assert "was edited" in line and "not overwriting" in line
    assert path.read_text().endswith("# my work\n")
    state = json.loads((tmp_path / STATE_FILE).read_text())
    assert list(state["generated"]) == ["autograd.py"]


@pytest.mark.parametrize("module", load_curriculum().modules, ids=lambda m: m.name)
def test_every_name_a_stub_file_uses_is_bound_and_every_library_import_explained(module):
    import typing

    from tinytorch.learn.stubs import module_source

    source = module_source(module)
    scope: dict = {}
    exec(compile(source, module.filename, "exec"), scope)
    for ex in module.exercises:  # every annotation of every signature resolves in the file itself
        typing.get_type_hints(scope[ex.name], globalns=scope)
    library_names = [a.strip().split(" as ")[-1] for line in module.imports if line.startswith("from tinytorch")
                     for a in line.split(" import ", 1)[1].split(",")]
    for name in library_names:  # each with what it is
        assert re.search(rf"^#   (class )?{name}\b", source, re.M), (module.name, name)


def test_a_backward_stub_shows_what_the_op_computes_not_its_gradient():
    from tinytorch.learn.stubs import module_source

    source = module_source(load_curriculum().module("autograd"))
    assert "a · b with broadcasting." in source and "g·b and g·a" not in source  # MulFunction's own doc
    assert "the gradient is permuted by the inverse permutation" not in source
    assert "_expand_reduced" not in source  # the sum's backward is the student's to write
    layers = module_source(load_curriculum().module("layers"))
    assert "σ(x) = 1/(1+e^-x), computed stably." in layers and "g·σ(x)·(1-σ(x))" not in layers


def test_check_status_and_exit_codes(tmp_path):
    module = load_curriculum().module("layers")
    (tmp_path / module.filename).write_text(reference_file(module, planted="tanh_backward"))
    r = run("check", "layers", "--dir", str(tmp_path))
    assert r.exit_code == 1
    assert "PASS             layers/relu_backward (2/2 cases)" in r.output
    assert "FAIL             layers/tanh_backward (0/1 cases)" in r.output
    assert "gradient of a: worst element" in r.output and "2/3 exercises of layers pass" in r.output
    assert run("check", "layers", "relu_backward", "--dir", str(tmp_path)).exit_code == 0
    status = json.loads(run("status", "--dir", str(tmp_path), "--json").output)
    layers = next(s for s in status if s["module"] == "layers")
    assert layers["started"] and layers["passed"] == ["relu_backward", "sigmoid_backward"]
    assert re.search(r"^layers +2/3 passed$", run("status", "--dir", str(tmp_path)).output, re.M)


@pytest.mark.parametrize("args, expected", [
    (["check", "nope"], "unknown module 'nope'"),
    (["check", "autograd", "nope", "--dir", "."], "no exercise 'nope'"),
    (["start", "nope"], "unknown module 'nope'"),
    (["status", "--dir", "/nonexistent/dir"], "/nonexistent/dir is not a directory"),
    (["check", "autograd", "--dir", "/nonexistent/dir"], "/nonexistent/dir is not a directory"),
])
def test_bad_input_is_one_line(args, expected):
    assert expected in one_error_line(run(*args))


def test_a_syntax_error_or_a_missing_file_is_one_line(tmp_path):
    assert "autograd.py: no such file" in one_error_line(run("check", "autograd", "--dir", str(tmp_path)))
    (tmp_path / "autograd.py").write_text("def add_backward(self, grad)\n    return grad\n")
    line = one_error_line(run("check", "autograd", "--dir", str(tmp_path)))
    assert "autograd.py, line 1: syntax error" in line


def test_check_outside_the_workspace_names_the_folder_it_looked_in(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = one_error_line(run("check", "autograd"))
    assert f"the workspace {tmp_path.resolve()} (the current directory, the default --dir) has no autograd.py" in line
    assert "pass --dir the folder `tito learn start autograd --dir DIR` wrote it to" in line


def test_the_milestone_figure_goes_into_the_workspace_and_is_rewritten(tmp_path, monkeypatch):
    from tinytorch.learn import milestones

    module = load_curriculum().module("autograd")
    work = tmp_path / "course"
    work.mkdir()
    (work / module.filename).write_text(reference_file(module))
    monkeypatch.chdir(tmp_path)  # the figure must not land here
    r = run("milestone", "shakespeare", "--dir", "course", "--steps", "1", "--chars", "1000")
    assert r.exit_code == 0, r.output
    figure = work / "milestone_shakespeare.png"
    assert r.output.rstrip().endswith(f"loss curves: {figure.relative_to(tmp_path)}")
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and list(tmp_path.glob("*.png")) == []
    asked = []

    def shakespeare(directory, plot, **settings):  # a second run: the earlier figure is no input
        asked.append(plot)
        raise ValueError("stopped here")

    monkeypatch.setattr(milestones, "shakespeare", shakespeare)
    assert one_error_line(run("milestone", "shakespeare", "--dir", "course")) == "Error: stopped here"
    assert asked == [str(figure.relative_to(tmp_path))]
    line = one_error_line(run("milestone", "shakespeare", "--dir", "course", "--plot", "course/autograd.py"))
    assert "--plot course/autograd.py: it is an input of this command (--dir autograd.py" in line


def test_grade_json_and_gradescope(tmp_path):
    module = load_curriculum().module("losses")
    good, bad = tmp_path / "alice", tmp_path / "bob"
    good.mkdir()
    bad.mkdir()
    (good / module.filename).write_text(reference_file(module))
    (bad / module.filename).write_text(reference_file(module, planted="cross_entropy_backward"))
    r = run("grade", str(good), str(bad))
    assert r.exit_code == 0, r.output
    book = json.loads(r.output)["students"]
    assert [(s["student"], s["score"], s["max_score"]) for s in book] == [("alice", 2.0, 2.0), ("bob", 1.0, 2.0)]
    bob = {e["exercise"]: e for e in book[1]["exercises"]}
    assert bob["cross_entropy_backward"]["score"] == 0.0 and "gradient of x" in bob["cross_entropy_backward"]["message"]
    out = tmp_path / "results.json"
    r = run("grade", str(bad), "--format", "gradescope", "--out", str(out))
    assert r.exit_code == 0, r.output
    results = json.loads(out.read_text())
    assert results["score"] == 1.0
    assert [(t["name"], t["score"], t["max_score"]) for t in results["tests"]] == [
        ("losses/cross_entropy_backward", 0.0, 1.0), ("losses/mse_loss", 1.0, 1.0)]
    assert results["tests"][0]["output"].startswith("fail (")
    usage = run("grade", str(good), str(bad), "--format", "gradescope")  # click's usage error
    assert usage.exit_code == 2 and "Error: Invalid value for DIRECTORIES: Gradescope" in usage.output


def test_subprocess_tito_learn_check(tmp_path):
    assert run("start", "flops", "--dir", str(tmp_path)).exit_code == 0
    proc = subprocess.run([sys.executable, "-m", "tito", "learn", "check", "flops", "--dir", str(tmp_path), "--json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and json.loads(proc.stdout)[0]["status"] == "not implemented"
    proc = subprocess.run([sys.executable, "-m", "tito", "learn", "check", "nope"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_the_milestone_trains_on_the_students_code_beside_the_reference(tmp_path):
    module = load_curriculum().module("autograd")
    # the student's linear_backward leaves a mark per call, so the test sees it really ran
    (tmp_path / module.filename).write_text(reference_file(module) + (
        "\n_marks = __import__('pathlib').Path(__file__).with_name('marks.txt')\n"
        "_linear_backward = linear_backward\n\n"
        "def linear_backward(self, grad):\n"
        "    with open(_marks, 'a') as f:\n        f.write('x')\n"
        "    return _linear_backward(self, grad)\n"))
    plot = tmp_path / "curves.png"
    result = shakespeare(tmp_path, steps=3, chars=4000, seq_len=16, batch_size=4, d_model=16, num_layers=1,
                         eval_batches=2, plot=plot)
    assert len(result["exercises"]) == len(module.exercises)
    assert len(result["losses"]["reference"]) == len(result["losses"]["yours"]) == 3
    # the library's own code as the student's: the same run, to the last bit
    assert result["losses"]["yours"] == result["losses"]["reference"] and result["difference"] == 0.0
    kernels = {k["exercise"]: k for k in result["kernels"]}
    assert kernels["autograd/linear_backward"]["calls"] > 0 and kernels["autograd/embedding_backward"]["calls"] > 0
    checks_only = 6  # the checks call it at most twice per case (3 cases)
    marks = len((tmp_path / "marks.txt").read_text())
    assert marks >= kernels["autograd/linear_backward"]["calls"] + 3 > checks_only
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the times are wall times: whether other programs were busy meanwhile is measured and said
    assert {"others_cores", "contended", "wall_s"} <= set(result["contention"])
    assert (result["contention_note"] is None) == (not result["contention"]["contended"])


def test_a_generator_is_timed_while_its_body_runs_not_when_it_is_made():
    from tinytorch.learn.milestones import Run, _timed

    work = [0.0]  # a clock that advances only when work is done

    def batches(n):
        for i in range(n):
            work[0] += 1.0  # the implementation's own work: one unit per item
            yield i

    run = Run("yours", [], 0.0)
    for _ in _timed(batches, "loader", run, clock=lambda: work[0])(5):
        work[0] += 10.0  # the caller's work between items is not the implementation's
    assert run.seconds["loader"] == 5.0 and run.calls["loader"] == 1
    plain = _timed(lambda: work.__setitem__(0, work[0] + 2.0), "plain", run, clock=lambda: work[0])
    plain()
    assert run.seconds["plain"] == 2.0 and run.calls["plain"] == 1


def test_the_milestone_trains_only_on_what_passes(tmp_path):
    module = load_curriculum().module("autograd")
    (tmp_path / module.filename).write_text(reference_file(module, planted="linear_backward"))
    result = shakespeare(tmp_path, steps=2, chars=4000, seq_len=16, batch_size=4, d_model=16, num_layers=1,
                         eval_batches=2)
    assert "autograd/linear_backward" not in result["exercises"]  # only what passes is trained on
    assert len(result["exercises"]) == len(module.exercises) - 1
    assert np.isfinite(result["your_val_loss"])


def test_the_milestone_needs_a_passed_exercise(tmp_path):
    run("start", "autograd", "--dir", str(tmp_path))
    line = one_error_line(run("milestone", "shakespeare", "--dir", str(tmp_path), "--plot", str(tmp_path / "p.png")))
    assert "no exercise passes its checks yet" in line


def test_the_fashion_mnist_milestone_trains_on_the_students_im2col(tmp_path):
    import os
    from pathlib import Path

    from tinytorch.learn.milestones import fashion_mnist

    root = Path(os.environ.get("TINYTORCH_DATA", "")) if os.environ.get("TINYTORCH_DATA") else None
    if root is None or not (root / "fashion-mnist").is_dir():
        pytest.skip("Fashion-MNIST is not in $TINYTORCH_DATA (tito data download fashion-mnist)")
    module = load_curriculum().module("conv2d")
    (tmp_path / module.filename).write_text(reference_file(module))
    result = fashion_mnist(tmp_path, steps=2, batch_size=16, train_images=64, test_images=50, root=root)
    assert result["exercises"] == ["conv2d/im2col", "conv2d/out_size"]
    assert result["losses"]["yours"] == result["losses"]["reference"] and result["difference"] == 0.0
    assert result["your_accuracy"] == result["reference_accuracy"]
    assert {k["exercise"]: k["calls"] > 0 for k in result["kernels"]} == {"conv2d/im2col": True, "conv2d/out_size": True}
